"""The gateway's session check (gateway.auth.SessionChecks): what refusing revoked sessions' access
tokens costs, beside the floors it is read against.

    flock /tmp/glimpse-bench.lock make bench BENCH=session_checks

Runs graph_svc as its own process (bench.stack) on a fresh database; SESSIONS logins of one user make
as many sessions (cheap argon2 settings: logins are not what is measured). Every call is over
loopback gRPC.

Figures (never asserted):
  1  graph_svc: CheckSessions of one session id (what a cache miss costs a request) p50/p99, one
     caller, beside Health/Check (the floor of any call) and GetUser (a one-row read);
     CheckSessions rate at 16 concurrent callers (what graph_svc sustains).
  2  gateway, in process: SessionChecks.require_live when the answer is remembered (the cost added
     to every other request) beside AccessTokens.verified when the token is remembered (the check
     every signed-in request already pays).
  3  sessions coming due at once (64 clients, every request asks): checks/s through SessionChecks
     asking one id per call, and batched as the gateway runs it (SESSION_BATCH_WINDOW_SECONDS).
  4  what it means: session checks per second for 10,000 sessions in constant use (one per session
     per SESSION_RECHECK_SECONDS), as a share of each rate measured in 3.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from bench.stack import running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line, time_calls
from gateway.auth import SESSION_BATCH_WINDOW_SECONDS, SESSION_RECHECK_SECONDS, AccessTokens, SessionChecks
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.config import MeshSettings
from mesh.tokens import ACCESS, signer_from

SESSIONS = 200
CALLS = 3_000
CONCURRENCY = 16
CONCURRENT_CALLS = 20_000
IN_PROCESS_CALLS = 200_000
ACTIVE = 10_000
REQUESTS = 20_000
REQUEST_CONCURRENCY = 64
PASSWORD = "a long enough passphrase for the bench"


async def _sessions(graph: graph_pb2_grpc.GraphServiceStub) -> tuple[int, list[int]]:
    user = await graph.RegisterUser(
        graph_pb2.RegisterUserRequest(username="bench.sessions", email="bench@example.com", password=PASSWORD)
    )
    ids = []
    for n in range(SESSIONS):
        login = await graph.AuthenticateUser(
            graph_pb2.AuthenticateUserRequest(login="bench.sessions", password=PASSWORD, device_label=f"bench {n}")
        )
        ids.append(login.session_id)
    return user.id, ids


async def _concurrent(graph: graph_pb2_grpc.GraphServiceStub, ids: list[int]) -> Sample:
    seconds: list[float] = []
    per_worker = CONCURRENT_CALLS // CONCURRENCY

    async def worker(offset: int) -> None:
        for n in range(per_worker):
            request = graph_pb2.CheckSessionsRequest(session_ids=[ids[(offset + n) % len(ids)]])
            t = time.perf_counter()
            await graph.CheckSessions(request)
            seconds.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w * 7) for w in range(CONCURRENCY)))
    return Sample(
        f"CheckSessions, {CONCURRENCY} concurrent callers", seconds, time.perf_counter() - started, len(seconds)
    )


async def _in_process(graph: graph_pb2_grpc.GraphServiceStub, user_id: int, session_id: int) -> list[Sample]:
    async def check(session_ids: list[int]) -> set[int]:
        response = await graph.CheckSessions(graph_pb2.CheckSessionsRequest(session_ids=session_ids))
        return set(response.live_session_ids)

    checks = SessionChecks(check, recheck_seconds=3600)  # remembered for the whole measurement
    await checks.require_live(session_id)
    tokens = AccessTokens(signer_from(MeshSettings()))
    token = signer_from(MeshSettings()).issue(user_id, ACCESS, session_id=session_id).token
    tokens.verified(token)

    started = time.perf_counter()
    for _ in range(IN_PROCESS_CALLS):
        tokens.verified(token)
    verified = time.perf_counter() - started

    started = time.perf_counter()
    for _ in range(IN_PROCESS_CALLS):
        await checks.require_live(session_id)
    remembered = time.perf_counter() - started

    # Sample needs per-call seconds for its percentiles: the mean stands for each (the loop is uniform).
    return [
        Sample(
            "floor: AccessTokens.verified, remembered token",
            [verified / IN_PROCESS_CALLS] * 100,
            verified,
            IN_PROCESS_CALLS,
        ),
        Sample(
            "SessionChecks.require_live, remembered answer",
            [remembered / IN_PROCESS_CALLS] * 100,
            remembered,
            IN_PROCESS_CALLS,
        ),
    ]


async def _due(graph: graph_pb2_grpc.GraphServiceStub, ids: list[int], window: float, name: str) -> Sample:
    """REQUESTS requests from REQUEST_CONCURRENCY concurrent clients, each of a session whose answer
    is due (recheck 0: every request asks), through SessionChecks with `window`."""

    async def check(session_ids: list[int]) -> set[int]:
        response = await graph.CheckSessions(graph_pb2.CheckSessionsRequest(session_ids=session_ids))
        return set(response.live_session_ids)

    checks = SessionChecks(check, recheck_seconds=0, batch_window_seconds=window)
    seconds: list[float] = []
    per_client = REQUESTS // REQUEST_CONCURRENCY

    async def client(offset: int) -> None:
        for n in range(per_client):
            t = time.perf_counter()
            await checks.require_live(ids[(offset + n * 13) % len(ids)])
            seconds.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(client(c * 3) for c in range(REQUEST_CONCURRENCY)))
    return Sample(name, seconds, time.perf_counter() - started, len(seconds), "checks")


async def measure(addr: str) -> tuple[list[Sample], list[Sample]]:
    async with grpc.aio.insecure_channel(addr) as channel:
        graph = graph_pb2_grpc.GraphServiceStub(channel)
        user_id, ids = await _sessions(graph)
        floor = await empty_call_floor(channel, CALLS)
        get_user = graph_pb2.GetUserRequest(user_id=user_id)
        one = await time_calls("GetUser (a one-row read)", lambda: graph.GetUser(get_user), CALLS)
        request = graph_pb2.CheckSessionsRequest(session_ids=[ids[0]])
        checked = await time_calls("CheckSessions of 1 id (a cache miss)", lambda: graph.CheckSessions(request), CALLS)
        concurrent = await _concurrent(graph, ids)
        unbatched = await _due(graph, ids, 0, f"due sessions, {REQUEST_CONCURRENCY} clients, one id per call")
        batched = await _due(
            graph,
            ids,
            SESSION_BATCH_WINDOW_SECONDS,
            f"due sessions, batched ({SESSION_BATCH_WINDOW_SECONDS * 1000:g} ms)",
        )
        in_process = await _in_process(graph, user_id, ids[0])
    return [floor, one, checked, concurrent, unbatched, batched], in_process


def main() -> None:
    with running_stack(["graph_svc"], argon2_time_cost="1", argon2_memory_kib="8192", argon2_parallelism="1") as stack:
        remote, local = asyncio.run(measure(stack.addr["graph_svc"]))
        rss = peak_rss_line()
    print(f"graph_svc in its own process, loopback gRPC; {SESSIONS} sessions of one user")
    for sample in remote:
        print(sample.line())
    print("gateway side, in process (mean per call):")
    for sample in local:
        print(f"  {sample.name:<46} {sample.wall / sample.units * 1e6:8.3f} us/call")
    per_second = ACTIVE / SESSION_RECHECK_SECONDS
    for sample in remote[4:]:
        print(
            f"{ACTIVE:,} sessions in constant use -> {per_second:,.0f} session checks/s "
            f"(one per session per {SESSION_RECHECK_SECONDS:g} s): {per_second / sample.rate:.0%} of the "
            f"'{sample.name}' rate"
        )
    print(
        f"a revoked session's access token is refused within {SESSION_RECHECK_SECONDS:g} s "
        "(at once on the gateway replica that revoked it)"
    )
    print(rss)


if __name__ == "__main__":
    main()
