"""Loads a demo social graph: every node of an edge list becomes a user, every edge two follows.

    python -m graph_svc.demo ../shared/datasets/socfb-Reed98.edges

Users are called reed<node> (reed0, reed1, ...) and share one demo password, printed at the end.
Idempotent: users and follows that exist are left alone, so running it twice adds nothing.

Demo follows are bulk-inserted without `graph.followed` events: the loader runs before anyone has
posted, so the fan-out would have nothing to backfill.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from graph_svc import repository as repo
from graph_svc.credentials import Passwords
from graph_svc.models import follows, users
from graph_svc.settings import GraphSettings
from mesh.db import Database
from mesh.ids import IdGenerator
from mesh.runtime import lease_id_shard

DEMO_PASSWORD = "glimpse-demo-password"
USERNAME_PREFIX = "reed"
_CHUNK = 5000


def read_edges(path: Path) -> list[tuple[int, int]]:
    """Undirected edges "u v" per line; lines starting with '%' or '#' are comments."""
    edges = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith(("%", "#")):
            continue
        if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
            raise ValueError(f"{path}:{number}: expected two node numbers, got {line!r}")
        u, v = int(parts[0]), int(parts[1])
        if u != v:
            edges.append((u, v))
    return edges


async def load(db: Database, edges: list[tuple[int, int]], passwords: Passwords, ids: IdGenerator) -> tuple[int, int]:
    """Creates the users and follows of `edges`; returns (users, follows) now in the graph."""
    nodes = sorted({n for edge in edges for n in edge})
    password_hash = await passwords.hash(DEMO_PASSWORD)
    now = dt.datetime.now(dt.UTC)
    async with db.unit_of_work() as session:
        for start in range(0, len(nodes), _CHUNK):
            rows = [
                {
                    "id": ids.next_id(),
                    "username": f"{USERNAME_PREFIX}{n}",
                    "email": f"{USERNAME_PREFIX}{n}@demo.glimpse.dev",
                    "password_hash": password_hash,
                    "display_name": f"Reed {n}",
                    "created_at": now,
                }
                for n in nodes[start : start + _CHUNK]
            ]
            await session.execute(insert(users).values(rows).on_conflict_do_nothing())
        names = [f"{USERNAME_PREFIX}{n}" for n in nodes]
        found = await session.execute(select(users.c.username, users.c.id).where(users.c.username.in_(names)))
        user_id = {row.username: row.id for row in found}
        pairs = set()
        for u, v in edges:
            a, b = user_id[f"{USERNAME_PREFIX}{u}"], user_id[f"{USERNAME_PREFIX}{v}"]
            pairs.add((a, b))
            pairs.add((b, a))
        ordered = sorted(pairs)
        for start in range(0, len(ordered), _CHUNK):
            rows = [{"follower_id": a, "followee_id": b} for a, b in ordered[start : start + _CHUNK]]
            await session.execute(insert(follows).values(rows).on_conflict_do_nothing())
        await repo.recount(session, list(user_id.values()))
    return len(user_id), len(pairs)


async def _main(path: Path) -> None:
    settings = GraphSettings()
    db = Database(settings.database_url, pool_size=2)
    try:
        started = time.perf_counter()
        passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        shard = settings.id_shard if settings.id_shard is not None else await lease_id_shard(db)
        n_users, n_follows = await load(db, read_edges(path), passwords, IdGenerator(shard))
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
    print(f"demo graph: {n_users} users, {n_follows} follows from {path.name} ({elapsed:.1f}s)")
    print(f"demo login: username {USERNAME_PREFIX}0 (or any {USERNAME_PREFIX}<n>), password {DEMO_PASSWORD}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m graph_svc.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("edges", type=Path, help="edge list: one 'u v' pair per line")
    args = parser.parse_args()
    if not args.edges.is_file():
        sys.exit(f"graph_svc.demo: {args.edges} not found; pass the path of an edge list (e.g. socfb-Reed98.edges)")
    asyncio.run(_main(args.edges))


if __name__ == "__main__":
    main()
