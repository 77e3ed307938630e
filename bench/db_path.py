"""The database path of a request, beside its floor: CPU per unit of work in the calling process.

    python -m bench db_path

On a fresh database, one process, one connection at a time (so CPU per call is what is compared):
  write   a 3-statement transaction as CreatePost writes: INSERT ... ON CONFLICT DO NOTHING RETURNING,
          an outbox INSERT, a SELECT of the row
  read    a one-row SELECT by primary key
each through SQLAlchemy's AsyncSession (mesh.db before issue 12) and AsyncConnection, through mesh.db
(Statement compiled once; a Core statement compiled per call; reads with and without a transaction),
and through psycopg alone on one connection: the floor (no pool, no wrapper). Each figure is the best
of three runs of N calls (CPU of this process; PostgreSQL's own CPU is not counted).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, Table, Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from mesh.config import MeshSettings
from mesh.db import Database, Statement
from mesh.events import POST_CREATED
from mesh.migrate import drop_database, ensure_database

N = 2000
metadata = MetaData()
posts = Table(
    "posts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("author_id", BigInteger, nullable=False),
    Column("caption", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)
_COLUMNS = (posts.c.id, posts.c.author_id, posts.c.caption, posts.c.created_at)
INSERT = Statement(
    insert(posts)
    .values(id=bindparam("id"), author_id=bindparam("author_id"), caption=bindparam("caption"))
    .on_conflict_do_nothing()
    .returning(posts.c.id)
)
EVENT = Statement(
    outbox.insert().values(id=bindparam("id"), subject=bindparam("subject"), payload=bindparam("payload"))
)
GET = Statement(select(*_COLUMNS).where(posts.c.id == bindparam("id")))
PAYLOAD = b"\x08" * 60
_next = iter(range(1, 10**9))


def core_statements(post_id: int) -> tuple[object, object, object]:
    """The same three statements built as a repository builds them per call."""
    return (
        insert(posts)
        .values(id=post_id, author_id=7, caption="hello #x")
        .on_conflict_do_nothing()
        .returning(posts.c.id),
        outbox.insert().values(id=post_id, subject=POST_CREATED.subject, payload=PAYLOAD),
        select(*_COLUMNS).where(posts.c.id == post_id),
    )


async def best_of_three(call: Callable[[], Awaitable[object]]) -> float:
    """Milliseconds of this process's CPU per call, the best of three runs of N."""
    for _ in range(200):
        await call()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(N):
            await call()
        best = min(best, (time.process_time() - started) / N * 1000)
    return best


async def _measure(url: str) -> list[tuple[str, float]]:
    engine = create_async_engine(url, pool_size=2, pool_pre_ping=True)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    db = Database(url, pool_size=2)
    raw = await psycopg.AsyncConnection.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
    raw_reads = await psycopg.AsyncConnection.connect(
        url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True
    )
    async with raw.cursor() as cur:
        await cur.execute("INSERT INTO posts (id, author_id, caption) VALUES (0, 7, 'read me')")
    await raw.commit()

    async def session_write() -> None:
        a, b, c = core_statements(next(_next))
        async with sessions() as session, session.begin():
            (await session.execute(a)).first()  # type: ignore[call-overload]
            await session.execute(b)  # type: ignore[call-overload]
            (await session.execute(c)).one()  # type: ignore[call-overload]

    async def connection_write() -> None:
        a, b, c = core_statements(next(_next))
        async with engine.begin() as conn:
            (await conn.execute(a)).first()  # type: ignore[call-overload]
            await conn.execute(b)  # type: ignore[call-overload]
            (await conn.execute(c)).one()  # type: ignore[call-overload]

    async def mesh_write() -> None:
        post_id = next(_next)
        async with db.unit_of_work() as session:
            (await session.execute(INSERT, {"id": post_id, "author_id": 7, "caption": "hello #x"})).first()
            await session.execute(EVENT, {"id": post_id, "subject": POST_CREATED.subject, "payload": PAYLOAD})
            (await session.execute(GET, {"id": post_id})).one()

    async def mesh_write_per_call() -> None:
        a, b, c = core_statements(next(_next))
        async with db.unit_of_work() as session:
            (await session.execute(a)).first()  # type: ignore[arg-type]
            await session.execute(b)  # type: ignore[arg-type]
            (await session.execute(c)).one()  # type: ignore[arg-type]

    async def psycopg_write() -> None:
        post_id = next(_next)
        async with raw.transaction(), raw.cursor() as cur:
            await cur.execute(INSERT.sql, INSERT.values({"id": post_id, "author_id": 7, "caption": "hello #x"}))
            await cur.fetchone()
            await cur.execute(
                EVENT.sql, EVENT.values({"id": post_id, "subject": POST_CREATED.subject, "payload": PAYLOAD})
            )
            await cur.execute(GET.sql, GET.values({"id": post_id}))
            await cur.fetchone()

    async def session_read() -> None:
        async with sessions() as session:
            (await session.execute(select(*_COLUMNS).where(posts.c.id == 0))).one()

    async def connection_read() -> None:
        async with engine.connect() as conn:
            (await conn.execute(select(*_COLUMNS).where(posts.c.id == 0))).one()

    async def mesh_read(transaction: bool) -> None:
        async with db.read_only(transaction=transaction) as session:
            (await session.execute(GET, {"id": 0})).one()

    async def psycopg_read() -> None:
        async with raw_reads.cursor() as cur:
            await cur.execute(GET.sql, GET.values({"id": 0}))
            await cur.fetchone()

    try:
        return [
            ("write: SQLAlchemy AsyncSession (+ pre-ping)", await best_of_three(session_write)),
            ("write: SQLAlchemy AsyncConnection (+ pre-ping)", await best_of_three(connection_write)),
            ("write: mesh.db, Core compiled per call", await best_of_three(mesh_write_per_call)),
            ("write: mesh.db, Statement compiled once", await best_of_three(mesh_write)),
            ("write: floor: psycopg alone, one connection", await best_of_three(psycopg_write)),
            ("read: SQLAlchemy AsyncSession (+ pre-ping)", await best_of_three(session_read)),
            ("read: SQLAlchemy AsyncConnection (+ pre-ping)", await best_of_three(connection_read)),
            ("read: mesh.db read_only()", await best_of_three(lambda: mesh_read(True))),
            ("read: mesh.db read_only(transaction=False)", await best_of_three(lambda: mesh_read(False))),
            ("read: floor: psycopg alone, autocommit", await best_of_three(psycopg_read)),
        ]
    finally:
        await raw.close()
        await raw_reads.close()
        await db.dispose()
        await engine.dispose()


def main() -> None:
    url = MeshSettings().database_url.rsplit("/", 1)[0] + f"/glimpse_bench_db_{uuid.uuid4().hex[:8]}"
    ensure_database(url)
    try:
        figures = asyncio.run(_measure(url))
    finally:
        drop_database(url)
    print(f"Database path: CPU per unit of work in the calling process (best of 3 x {N:,}); loopback PostgreSQL")
    floors = {kind: ms for name, ms in figures if "floor" in name for kind in (name.split(":")[0],)}
    for name, ms in figures:
        print(f"  {name:<52} {ms:6.3f} ms   {ms / floors[name.split(':')[0]]:4.1f}x the floor")
