"""Account deletion, graph side: DeleteUser of a user with 5,000 followers who follows 1,000 (the
issue's deletion benchmark has 5,000 followers), beside the same call for a user with no follows
(the floor: the password check and the fixed work of the transaction), and what is left of them.

    flock /tmp/glimpse-bench.lock make bench BENCH=graph_erasure

Runs graph_svc as its own process (bench.stack) on a fresh database. FOLLOWERS + FOLLOWEES users and
the users to delete are COPYed into graph.users with their counts, and the follows into
graph.follows; each of LEAVERS users is followed by the same FOLLOWERS and follows the same
FOLLOWEES, and also has mutes, blocks and follow requests both ways (MUTES of each). Password hashes
are argon2id with graph_svc's bench settings (time cost 1, 8 MiB), so the password check is small
and the same in both figures.

Figures (never asserted):
  1  DeleteUser wall time (one caller, loopback gRPC): each of LEAVERS users with the follows above,
     beside each of LEAVERS users with none.
  2  references left: rows of any bigint column of any graph table holding a deleted id (must be
     0: the reports about a user are the documented exception and none are made here), and
     followers whose following_count no longer matches their follows (must be 0).
"""

from __future__ import annotations

import asyncio
import time

import grpc
from argon2 import PasswordHasher, Type

from bench import feed_data
from bench.feed_data import Step
from bench.stack import Stack, running_stack
from bench.stats import Sample, peak_rss_line
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc.credentials import prepare_password
from mesh.identity import as_caller

FOLLOWERS = 5_000
FOLLOWEES = 1_000
MUTES = 50
LEAVERS = 3
PASSWORD = "a long enough passphrase for the bench"
# Generated ids start here: far below any minted id.
BASE_ID = 1 << 40


def load(stack: Stack) -> tuple[list[int], list[int]]:
    """Users and follows; returns (leavers with follows, leavers without)."""
    password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID).hash(
        prepare_password(PASSWORD)
    )
    followers = [BASE_ID + n for n in range(FOLLOWERS)]
    followees = [BASE_ID + FOLLOWERS + n for n in range(FOLLOWEES)]
    busy = [BASE_ID + FOLLOWERS + FOLLOWEES + n for n in range(LEAVERS)]
    idle = [BASE_ID + FOLLOWERS + FOLLOWEES + LEAVERS + n for n in range(LEAVERS)]
    counts: dict[int, tuple[int, int]] = {f: (0, LEAVERS) for f in followers}  # id -> (followers, following)
    counts.update({f: (LEAVERS, 0) for f in followees})
    counts.update({u: (FOLLOWERS, FOLLOWEES) for u in busy})
    counts.update({u: (0, 0) for u in idle})
    with (
        feed_data.connect(stack.database_url) as conn,
        Step(f"{len(counts):,} users, {LEAVERS * (FOLLOWERS + FOLLOWEES):,} follows (COPY)"),
    ):
        with conn.cursor() as cur:
            with cur.copy(
                "COPY graph.users (id, username, email, password_hash, follower_count, following_count) FROM STDIN"
            ) as copy:
                for user_id, (followed_by, following) in counts.items():
                    copy.write_row(
                        (user_id, f"u{user_id}", f"u{user_id}@bench.glimpse.dev", password_hash, followed_by, following)
                    )
            with cur.copy("COPY graph.follows (follower_id, followee_id) FROM STDIN") as copy:
                for leaver in busy:
                    for follower in followers:
                        copy.write_row((follower, leaver))
                    for followee in followees:
                        copy.write_row((leaver, followee))
            for leaver in busy:
                for n in range(MUTES):
                    other, another = followers[n], followers[MUTES + n]
                    cur.execute(
                        "INSERT INTO graph.mutes (muter_id, muted_id) VALUES (%s, %s), (%s, %s)",
                        (leaver, other, other, leaver),
                    )
                    cur.execute("INSERT INTO graph.blocks (blocker_id, blocked_id) VALUES (%s, %s)", (leaver, another))
                    cur.execute(
                        "INSERT INTO graph.follow_requests (requester_id, target_id) VALUES (%s, %s)",
                        (leaver, followees[n]),
                    )
        conn.execute("ANALYZE")
    return busy, idle


async def measure(addr: str, busy: list[int], idle: list[int]) -> list[Sample]:
    async with grpc.aio.insecure_channel(addr) as channel:
        graph = graph_pb2_grpc.GraphServiceStub(channel)
        samples = []
        for name, users in (
            ("DeleteUser, no follows (floor)", idle),
            (f"DeleteUser, {FOLLOWERS:,} followers + {FOLLOWEES:,} followees", busy),
        ):
            seconds = []
            for user_id in users:
                started = time.perf_counter()
                await graph.DeleteUser(graph_pb2.DeleteUserRequest(password=PASSWORD), metadata=as_caller(user_id))
                seconds.append(time.perf_counter() - started)
            samples.append(Sample(name, seconds, sum(seconds), len(seconds), "users"))
        return samples


def leftovers(stack: Stack, deleted: list[int]) -> tuple[int, int]:
    """(rows of the graph schema holding a deleted id, users whose following_count is off)."""
    with feed_data.connect(stack.database_url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'graph' AND data_type = 'bigint'"
        ).fetchall()
        holding = 0
        for table, column in columns:
            row = conn.execute(
                f'SELECT count(*) FROM graph."{table}" WHERE "{column}" = ANY(%s)', (deleted,)
            ).fetchone()
            holding += row[0] if row else 0
        off = conn.execute(
            "SELECT count(*) FROM graph.users u WHERE following_count <> "
            "(SELECT count(*) FROM graph.follows f WHERE f.follower_id = u.id) "
            "OR follower_count <> (SELECT count(*) FROM graph.follows f WHERE f.followee_id = u.id)"
        ).fetchone()
    return holding, off[0] if off else 0


def main() -> None:
    with running_stack(["graph_svc"], argon2_time_cost="1", argon2_memory_kib="8192", argon2_parallelism="1") as stack:
        busy, idle = load(stack)
        samples = asyncio.run(measure(stack.addr["graph_svc"], busy, idle))
        holding, off = leftovers(stack, busy + idle)
        rss = peak_rss_line()
    print(f"graph_svc in its own process, one caller, loopback gRPC; {LEAVERS} users of each kind")
    for sample in samples:
        print(
            f"  {sample.name:<52} mean {sample.wall / sample.units * 1000:8.1f} ms   "
            f"max {max(sample.seconds) * 1000:8.1f} ms"
        )
    print(f"  rows of the graph schema still holding a deleted id: {holding} (must be 0)")
    print(f"  users whose follower or following count no longer matches their follows: {off} (must be 0)")
    print(rss)


if __name__ == "__main__":
    main()
