"""Rate limits, through HTTP, on gateways of their own (small budgets, a fresh namespace each) in front of
the real graph_svc and Redis: a burst over a budget gets 429 with Retry-After in the error shape,
budgets count per user or per client address, X-Forwarded-For is believed only from trusted proxies,
and a Redis outage lets reads through and refuses writes."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError
from starlette.requests import Request

from gateway.app import create_app
from gateway.rate_limits import client_address
from gateway.settings import GatewaySettings
from mesh.config import MeshSettings
from mesh.redis_client import connect_redis
from tests.conftest import PASSWORD
from tests.gateway.conftest import UNREACHABLE, ServeApp
from tests.gateway.test_app import assert_error, reasons


@pytest.fixture
def gateway(serve_app: ServeApp, graph_addr: str):
    """Serves a gateway with the given settings in front of the real graph_svc, in a namespace of its
    own so its budgets start empty."""

    def serve(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, object] = {
            "graph_addr": graph_addr,
            "namespace": f"rl{uuid.uuid4().hex[:12]}",
            "log_json": False,
            **overrides,
        }
        return serve_app(create_app(GatewaySettings.model_validate(values)))

    return serve


def assert_rate_limited(response: httpx.Response, budget: str) -> int:
    """The response is a 429 for `budget` in the error shape; returns its Retry-After."""
    error = assert_error(response, 429, "RESOURCE_EXHAUSTED")
    assert reasons(error) == ["RATE_LIMITED"]
    info = next(d for d in error["details"] if d["type"] == "ErrorInfo")
    assert info["metadata"] == {"budget": budget}
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert {"type": "RetryInfo", "retry_delay": f"{retry_after}s"} in error["details"]
    return retry_after


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_login_attempts_over_the_budget_get_429(gateway, make_account):
    account = await make_account()
    async with gateway(rate_limit_login_per_ip="3/minute") as client:
        for _ in range(3):
            wrong = await client.post("/v1/sessions", json={"login": account.user.username, "password": "nope"})
            assert_error(wrong, 401, "UNAUTHENTICATED")
        # Even the right password waits: the budget counts attempts, not failures.
        right = {"login": account.user.username, "password": PASSWORD}
        assert_rate_limited(await client.post("/v1/sessions", json=right), "login_per_ip")


async def test_login_attempts_for_one_account_are_counted_across_addresses(gateway, make_account):
    target, bystander = await make_account(), await make_account()
    async with gateway(rate_limit_login_per_name="2/minute", trusted_proxies="127.0.0.1") as client:
        # The same account however it is spelled: the count is per normalized login name.
        for address, login in [("203.0.113.1", target.user.username), ("203.0.113.2", target.user.username.upper())]:
            response = await client.post(
                "/v1/sessions", json={"login": login, "password": "nope"}, headers=forwarded(address)
            )
            assert_error(response, 401, "UNAUTHENTICATED")
        third = await client.post(
            "/v1/sessions",
            json={"login": f" {target.user.username} ", "password": PASSWORD},
            headers=forwarded("203.0.113.3"),
        )
        assert_rate_limited(third, "login_per_name")
        other = await client.post(
            "/v1/sessions",
            json={"login": bystander.user.username, "password": PASSWORD},
            headers=forwarded("203.0.113.3"),
        )
        assert other.status_code == 200, other.text


async def test_follow_bursts_are_limited_per_user_and_the_refused_one_changes_nothing(gateway, make_account):
    me, other, star = await make_account(), await make_account(), await make_account()
    target = {"target_user_id": str(star.id)}
    async with gateway(rate_limit_follows_per_user="2/minute") as client:
        assert (await client.post("/v1/follow", json=target, headers=me.headers)).status_code == 200
        assert (await client.delete(f"/v1/follow/{star.id}", headers=me.headers)).status_code == 200
        assert_rate_limited(await client.post("/v1/follow", json=target, headers=me.headers), "follows_per_user")
        star_now = await client.get(f"/v1/users/{star.user.username}")
        assert star_now.json()["follower_count"] == "0"
        # Another user's budget is untouched.
        theirs = await client.post("/v1/follow", json=target, headers=other.headers)
        assert theirs.status_code == 200 and theirs.json()["target"]["follower_count"] == "1"


async def test_registrations_are_limited_per_address(gateway, new_username):
    def registration() -> dict[str, str]:
        name = new_username()
        return {"username": name, "email": f"{name}@example.com", "password": PASSWORD}

    async with gateway(rate_limit_registrations_per_ip="1/minute", trusted_proxies="127.0.0.0/8") as client:
        first = await client.post("/v1/users", json=registration(), headers=forwarded("198.51.100.7"))
        assert first.status_code == 201, first.text
        again = await client.post("/v1/users", json=registration(), headers=forwarded("198.51.100.7"))
        assert_rate_limited(again, "registrations_per_ip")
        elsewhere = await client.post("/v1/users", json=registration(), headers=forwarded("198.51.100.8"))
        assert elsewhere.status_code == 201, elsewhere.text


async def test_reads_are_limited_per_user_and_anonymous_reads_per_address(gateway, make_account):
    me = await make_account()
    async with gateway(rate_limit_reads_per_user="2/minute", rate_limit_reads_per_ip="2/minute") as client:
        for _ in range(2):
            assert (await client.get(f"/v1/users/{me.id}/followers", headers=me.headers)).status_code == 200
        limited = await client.get(f"/v1/users/{me.id}/following", headers=me.headers)
        assert_rate_limited(limited, "reads_per_user")
        for _ in range(2):
            assert (await client.get(f"/v1/users/{me.user.username}")).status_code == 200
        assert_rate_limited(await client.get(f"/v1/users/{me.user.username}"), "reads_per_ip")


async def test_a_spent_budget_is_back_after_retry_after(gateway, make_account):
    me = await make_account()
    async with gateway(rate_limit_reads_per_ip="1/second") as client:
        assert (await client.get(f"/v1/users/{me.user.username}")).status_code == 200
        retry_after = assert_rate_limited(await client.get(f"/v1/users/{me.user.username}"), "reads_per_ip")
        await asyncio.sleep(retry_after + 0.05)
        assert (await client.get(f"/v1/users/{me.user.username}")).status_code == 200


async def test_an_untrusted_peer_cannot_choose_its_address(gateway):
    body = {"login": "nobody", "password": "nope"}
    async with gateway(rate_limit_login_per_ip="1/minute") as client:
        assert_error(
            await client.post("/v1/sessions", json=body, headers=forwarded("192.0.2.1")), 401, "UNAUTHENTICATED"
        )
        second = await client.post("/v1/sessions", json=body, headers=forwarded("192.0.2.2"))
        assert_rate_limited(second, "login_per_ip")


async def test_keys_are_namespaced_and_hash_tagged(gateway, make_account):
    me = await make_account()
    namespace = f"rl{uuid.uuid4().hex[:12]}"
    async with gateway(namespace=namespace) as client:
        await client.get(f"/v1/users/{me.id}/followers", headers=me.headers)
        await client.get(f"/v1/users/{me.user.username}")
    redis = connect_redis(MeshSettings().redis_url)
    try:
        keys = sorted([key.decode() async for key in redis.scan_iter(match=f"{namespace}:*")])
        # "<namespace>:rate:<budget>/{<subject>}/<amount>/<multiples>/<granularity>"
        assert [key.rsplit("/", 3)[0] for key in keys] == [
            f"{namespace}:rate:reads_per_ip/{{127.0.0.1}}",
            f"{namespace}:rate:reads_per_user/{{{me.id}}}",
        ]
        for key in keys:
            await redis.delete(key)
    finally:
        await redis.aclose()


async def test_with_redis_down_reads_go_through_and_writes_are_refused(gateway, make_account, caplog):
    me, star = await make_account(), await make_account()
    async with gateway(redis_url="redis://127.0.0.1:1/0") as client:
        read = await client.get(f"/v1/users/{me.id}/followers", headers=me.headers)
        assert read.status_code == 200, read.text
        assert (await client.get(f"/v1/users/{star.user.username}")).status_code == 200
        follow = await client.post("/v1/follow", json={"target_user_id": str(star.id)}, headers=me.headers)
        error = assert_error(follow, 503, "UNAVAILABLE")
        assert reasons(error) == ["RATE_LIMITS_UNAVAILABLE"]
        login = await client.post("/v1/sessions", json={"login": me.user.username, "password": PASSWORD})
        assert_error(login, 503, "UNAVAILABLE")
        assert (await client.get(f"/v1/users/{star.user.username}")).json()["follower_count"] == "0"
    assert any(record.name == "gateway.rate_limits" and record.levelname == "WARNING" for record in caplog.records)


async def test_a_redis_that_hangs_costs_reads_no_more_than_the_limit_timeout(gateway, make_account):
    # Accepts connections and never answers.
    silent: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    me = await make_account()
    try:
        async with gateway(redis_url=f"redis://127.0.0.1:{port}/0", rate_limit_timeout_seconds=0.2) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(3):
                response = await client.get(f"/v1/users/{me.id}/followers", headers=me.headers)
                assert response.status_code == 200, response.text
            # The first two reads wait out the timeout (two in a row: Redis hangs); the next ones skip it.
            assert loop.time() - started < 1.5
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_one_slow_answer_refuses_one_write_not_every_write_after_it(gateway, make_account):
    # A proxy to the real Redis that holds back its first reply past the check's deadline: one slow
    # answer (a busy host), after which Redis answers as usual.
    target = MeshSettings().redis_url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    held = asyncio.Event()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if hold and not held.is_set():
                    held.set()
                    await asyncio.sleep(0.6)
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(target[0], int(target[1]))
        await asyncio.gather(
            pipe(client_reader, redis_writer, hold=False), pipe(redis_reader, client_writer, hold=True)
        )

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    me, star, other = await make_account(), await make_account(), await make_account()
    try:
        async with gateway(redis_url=f"redis://127.0.0.1:{port}/0", rate_limit_timeout_seconds=0.3) as client:
            slow = await client.post("/v1/follow", json={"target_user_id": str(star.id)}, headers=me.headers)
            assert reasons(assert_error(slow, 503, "UNAVAILABLE")) == ["RATE_LIMITS_UNAVAILABLE"]
            assert held.is_set()
            # Redis answers again: the next write goes through instead of waiting out a breaker.
            follow = await client.post("/v1/follow", json={"target_user_id": str(other.id)}, headers=me.headers)
            assert follow.status_code == 200, follow.text
    finally:
        server.close()


def _request(peer: str, *forwarded_for: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded_for]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 5000)})


TRUSTED = GatewaySettings(trusted_proxies="10.0.0.0/8, 127.0.0.1").trusted_proxies


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "address"),
    [
        # Not a trusted proxy: its header is ignored.
        ("198.51.100.1", ["203.0.113.9"], "198.51.100.1"),
        # A trusted proxy: the nearest untrusted hop is the client; what the client itself wrote
        # (the leftmost, forgeable entries) is ignored.
        ("10.0.0.2", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.2", ["6.6.6.6, 203.0.113.9"], "203.0.113.9"),
        ("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.0.0.5"], "203.0.113.9"),
        ("10.0.0.2", ["6.6.6.6", "203.0.113.9, 10.1.1.1"], "203.0.113.9"),
        # Unreadable hop: the last address a trusted proxy vouched for.
        ("10.0.0.2", ["203.0.113.9, garbage"], "10.0.0.2"),
        ("10.0.0.2", [], "10.0.0.2"),
        # Every hop a proxy: the furthest one.
        ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], "10.0.0.3"),
        # IPv6 counts per /64; IPv4-mapped IPv6 is the IPv4 address.
        ("2001:db8:1:2:aaaa::1", [], "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.1", [], "198.51.100.1"),
        ("not-an-ip", [], "unknown"),
    ],
)
def test_client_address(peer, forwarded_for, address):
    assert client_address(_request(peer, *forwarded_for), TRUSTED) == address


def test_settings_refuse_an_unreadable_rate_or_proxy():
    with pytest.raises(ValidationError, match="rate_limit_posts_per_user"):
        GatewaySettings(rate_limit_posts_per_user="lots")
    with pytest.raises(ValidationError, match="trusted_proxies"):
        GatewaySettings(trusted_proxies="10.0.0.1/8")


def test_settings_read_budgets_and_proxies_from_the_environment(monkeypatch):
    monkeypatch.setenv("GLIMPSE_RATE_LIMIT_FOLLOWS_PER_USER", "5 per hour")
    monkeypatch.setenv("GLIMPSE_TRUSTED_PROXIES", "10.0.0.0/8,::1")
    settings = GatewaySettings(graph_addr=UNREACHABLE)
    assert settings.rate_limit_follows_per_user == "5 per hour"
    assert [str(network) for network in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]


def test_budgets_are_documented_as_429_on_every_api_route():
    spec = create_app(GatewaySettings(graph_addr=UNREACHABLE)).openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if re.match(r"^/v1/", path):
                assert "429" in operation["responses"], f"{method.upper()} {path}"
                assert "Retry-After" in operation["responses"]["429"]["headers"]
