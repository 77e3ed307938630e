"""Channel retries: every RPC of the contracts is classified, and a service answering UNAVAILABLE after
doing its work sees a write that is not idempotent exactly once, while reads and idempotent writes
are retried."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

import glimpse
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.channels import REQUEST_ID_FIELD, RETRIED, RETRIES, RETRY_POLICY, Retry, open_channel
from mesh.errors import Unavailable
from mesh.server import ServiceHost


def contract_methods() -> dict[str, object]:
    """Every RPC of the generated contracts (gen/glimpse), full name -> method descriptor."""
    methods = {}
    # The generated folders are namespace packages (no __init__.py), which pkgutil does not walk.
    modules = {
        "glimpse." + ".".join(path.relative_to(root).with_suffix("").parts)
        for root in map(Path, glimpse.__path__)
        for path in root.rglob("*_pb2.py")
    }
    for name in sorted(modules):
        descriptor = importlib.import_module(name).DESCRIPTOR
        for service in descriptor.services_by_name.values():
            for method in service.methods:
                methods[f"{service.full_name}/{method.name}"] = method
    return methods


def test_every_rpc_of_the_contracts_is_classified_and_nothing_else_is():
    methods = contract_methods()
    assert "glimpse.post.v1.PostService/CreatePost" in methods
    unclassified = sorted(set(methods) - set(RETRIES))
    assert not unclassified, f"classify these in mesh/channels.py RETRIES (is a repeat safe?): {unclassified}"
    stale = sorted(set(RETRIES) - set(methods))
    assert not stale, f"mesh/channels.py RETRIES names RPCs that no contract has: {stale}"


def test_methods_retried_by_request_id_have_one():
    methods = contract_methods()
    for name, retry in RETRIES.items():
        if retry is Retry.BY_REQUEST_ID:
            field = methods[name].input_type.fields_by_name.get(REQUEST_ID_FIELD)  # type: ignore[attr-defined]
            assert field is not None and field.type == FieldDescriptor.TYPE_STRING, name


class _Outage:
    """Servicers that do their work (counted) and then answer UNAVAILABLE, as a service does when
    its database goes away mid-request."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.request_ids: list[str] = []

    def fail(self, method: str) -> None:
        self.calls[method] += 1
        raise Unavailable("the database is unavailable; retry shortly", reason="DATABASE_UNAVAILABLE")


class _Graph(graph_pb2_grpc.GraphServiceServicer):
    def __init__(self, outage: _Outage) -> None:
        self._outage = outage

    async def RegisterUser(self, request: object, context: object) -> None:
        self._outage.fail("RegisterUser")

    async def GetUser(self, request: object, context: object) -> None:
        self._outage.fail("GetUser")

    async def FollowUser(self, request: object, context: object) -> None:
        self._outage.fail("FollowUser")


class _Posts(post_pb2_grpc.PostServiceServicer):
    def __init__(self, outage: _Outage) -> None:
        self._outage = outage

    async def CreatePost(self, request: post_pb2.CreatePostRequest, context: object) -> None:
        self._outage.request_ids.append(request.request_id)
        self._outage.fail("CreatePost")


class _Media(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, outage: _Outage) -> None:
        self._outage = outage

    async def CreateUploadGrant(self, request: object, context: object) -> None:
        self._outage.fail("CreateUploadGrant")


@pytest.fixture
async def outage() -> AsyncIterator[tuple[_Outage, grpc.aio.Channel]]:
    """A real host on port 0 whose services fail after working, and a mesh channel to it."""
    failing = _Outage()
    host = ServiceHost("outage", "127.0.0.1:0", grace_seconds=0.5)
    host.add_servicer(
        graph_pb2_grpc.add_GraphServiceServicer_to_server,
        _Graph(failing),
        graph_pb2.DESCRIPTOR.services_by_name["GraphService"],
    )
    host.add_servicer(
        post_pb2_grpc.add_PostServiceServicer_to_server,
        _Posts(failing),
        post_pb2.DESCRIPTOR.services_by_name["PostService"],
    )
    host.add_servicer(
        media_pb2_grpc.add_MediaServiceServicer_to_server,
        _Media(failing),
        media_pb2.DESCRIPTOR.services_by_name["MediaService"],
    )
    port = await host.start()
    async with open_channel(f"127.0.0.1:{port}") as channel:
        yield failing, channel
    await host.stop()


async def _unavailable(call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "the database is unavailable; retry shortly"


async def test_writes_that_are_not_idempotent_are_sent_once(outage):
    failing, channel = outage
    assert RETRIES["glimpse.graph.v1.GraphService/RegisterUser"] is Retry.NEVER
    graph = graph_pb2_grpc.GraphServiceStub(channel)
    await _unavailable(graph.RegisterUser(graph_pb2.RegisterUserRequest(username="ada", email="a@b.c", password="x")))
    media = media_pb2_grpc.MediaServiceStub(channel)
    await _unavailable(media.CreateUploadGrant(media_pb2.CreateUploadGrantRequest(content_type="image/png")))
    assert failing.calls == {"RegisterUser": 1, "CreateUploadGrant": 1}


async def test_reads_idempotent_writes_and_requests_with_an_id_are_retried(outage):
    failing, channel = outage
    attempts = RETRY_POLICY["maxAttempts"]
    graph = graph_pb2_grpc.GraphServiceStub(channel)
    await _unavailable(graph.GetUser(graph_pb2.GetUserRequest(user_id=1)))
    await _unavailable(graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=1), metadata=(("x-user-id", "2"),)))
    posts = post_pb2_grpc.PostServiceStub(channel)
    await _unavailable(posts.CreatePost(post_pb2.CreatePostRequest(media_ids=[1], request_id="k-1")))
    assert failing.calls == {"GetUser": attempts, "FollowUser": attempts, "CreatePost": attempts}
    # Each attempt carried the same id, so post_svc answers every repeat with the first one's post.
    assert failing.request_ids == ["k-1"] * attempts
    assert {"glimpse.graph.v1.GraphService/GetUser", "glimpse.post.v1.PostService/CreatePost"} <= RETRIED
