"""Control characters in request text: refused at every gRPC entry point with INVALID_ARGUMENT naming
the field path, whatever the message's shape; ordinary text (lines, tabs, emoji, any script) passes."""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from glimpse.media.v1 import media_pb2
from glimpse.post.v1 import post_pb2
from mesh.errors import InvalidArgument
from mesh.server import ServiceHost
from mesh.validation import check_request_text, control_character_problem
from tests.conftest import Stubs, grpcurl
from tests.media_svc.conftest import error_details

CONTROL = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc" and chr(c) not in "\t\n\r"]


def refused_field(message: Message) -> tuple[str, str]:
    """(field, description) of the refusal `check_request_text` raises for `message`."""
    with pytest.raises(InvalidArgument) as caught:
        check_request_text(message)
    ((field, description),) = caught.value.fields.items()
    assert caught.value.message == f"{field}: {description}"
    return field, description


def test_every_control_character_but_tab_line_feed_and_carriage_return_is_refused():
    assert len(CONTROL) == 65 - 3  # C0 (32), DEL and C1 (32)
    for char in CONTROL:
        field, description = refused_field(post_pb2.CreatePostRequest(caption=f"hello{char}world", media_ids=[1]))
        assert field == "caption"
        assert description == (
            f"must not contain control characters: U+{ord(char):04X} at offset 5 "
            "(only tab, line feed and carriage return are allowed)"
        )


@pytest.mark.parametrize(
    "text",
    [
        "two\nlines\r\nand\ta tab",
        "no-break\u00a0space, line\u2028separator, zero\u200bwidth",
        "family \U0001f468\u200d\U0001f469\u200d\U0001f467 #été 東京 مرحبا",
        "",
    ],
)
def test_ordinary_text_passes(text):
    check_request_text(post_pb2.CreatePostRequest(caption=text, media_ids=[1], location=post_pb2.Location(name=text)))
    assert control_character_problem(text) is None


def test_the_field_path_names_nested_repeated_and_map_fields():
    nested = post_pb2.UpdatePostRequest(post=post_pb2.Post(id=1, caption="a\x00b"))
    assert refused_field(nested)[0] == "post.caption"
    repeated = post_pb2.UpdatePostRequest(update_mask=field_mask_pb2.FieldMask(paths=["caption", "x\x1b[2J"]))
    assert refused_field(repeated) == (
        "update_mask.paths[1]",
        "must not contain control characters: U+001B at offset 1 (only tab, line feed and carriage return are allowed)",
    )
    location = post_pb2.CreatePostRequest(caption="fine", location=post_pb2.Location(name="Par\u0085is"))
    assert refused_field(location)[0] == "location.name"
    value = media_pb2.UploadGrant(form_fields={"key": "u/1/raw/2", "policy": "eyJ\x7f"})
    assert refused_field(value)[0] == "form_fields['policy']"
    key = media_pb2.UploadGrant(form_fields={"x\x00": "fine"})
    field, description = refused_field(key)
    assert field == "form_fields" and description.startswith("has a key that must not contain control characters")
    assert "x\x00" not in description


def test_recursive_message_types_are_walked_to_the_bottom():
    # google.protobuf.Struct: a map of Values, which hold lists of Values and Structs again.
    inner = struct_pb2.Struct()
    inner.update({"deep": {"list": ["ok", {"text": "bad\x00"}]}})
    assert refused_field(inner)[0] == (
        "fields['deep'].struct_value.fields['list'].list_value.values[1].struct_value.fields['text'].string_value"
    )
    clean = struct_pb2.Struct()
    clean.update({"deep": {"list": ["ok", {"text": "fine\n"}], "n": 1.5}})
    check_request_text(clean)


def test_messages_without_text_are_accepted_whatever_they_hold():
    check_request_text(post_pb2.BatchGetPostsRequest(post_ids=list(range(1, 101))))
    check_request_text(media_pb2.AttachMediaRequest(post_id=0, media_ids=[0, 0]))


def test_the_offset_and_the_first_bad_field_are_reported_not_the_text():
    field, description = refused_field(
        post_pb2.CreatePostRequest(
            caption="fine", request_id="secret\x00token", location=post_pb2.Location(name="\x01")
        )
    )
    # A message's own strings are checked before its nested messages; the text is never echoed (passwords).
    assert field == "request_id"
    assert "U+0000 at offset 6" in description and "secret" not in description


class _Probe:
    """A service with an async-generator streaming method taking text, to reach the stream wrapper."""

    calls = 0

    @classmethod
    def register(cls, _servicer: object, server: grpc.aio.Server) -> None:
        async def echo(request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> AsyncIterator:
            cls.calls += 1
            for _ in range(2):
                yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

        handler = grpc.unary_stream_rpc_method_handler(
            echo,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("probe.Probe", {"Echo": handler}),))


@pytest.fixture
async def probe_host() -> AsyncIterator[grpc.aio.Channel]:
    """A bare ServiceHost (what every service runs on), serving health and the streaming probe."""
    host = ServiceHost("probe", "127.0.0.1:0", grace_seconds=0.5)
    host.add_servicer(_Probe.register, None, health_pb2.DESCRIPTOR.services_by_name["Health"])
    port = await host.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await host.stop()


async def test_every_service_host_refuses_control_characters_in_unary_and_streaming_calls(probe_host):
    health = health_pb2_grpc.HealthStub(probe_host)
    # Unary (grpc's own health service: the host installs the check for every service it serves).
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="glimpse\x00"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, _, fields = error_details(caught.value)
    assert reason == "INVALID_ARGUMENT"
    assert fields == {
        "service": "must not contain control characters: U+0000 at offset 7 "
        "(only tab, line feed and carriage return are allowed)"
    }
    assert caught.value.details() == f"service: {fields['service']}"
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING

    # Streaming written as a coroutine (health Watch) and as an async generator.
    watch = health.Watch(health_pb2.HealthCheckRequest(service="\x9b"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value)[2].keys() == {"service"}

    echo = probe_host.unary_stream(
        "/probe.Probe/Echo",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    _Probe.calls = 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [item async for item in echo(health_pb2.HealthCheckRequest(service="a\x07"))]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _Probe.calls == 0, "the servicer ran although the request was refused"
    assert len([item async for item in echo(health_pb2.HealthCheckRequest(service="a\tb"))]) == 2
    assert _Probe.calls == 1


async def test_post_service_refuses_nul_from_internal_callers_before_writing(stubs: Stubs, make_account, upload_photo):
    author = await make_account()
    media_id = await upload_photo(author)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.post.CreatePost(
            post_pb2.CreatePostRequest(caption="hello\x00world", media_ids=[media_id], request_id="nul-1"),
            metadata=author.metadata,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value)[2].keys() == {"caption"}
    # Nothing was attached or reserved: the same key and photo post at once with a clean caption.
    post = await stubs.post.CreatePost(
        post_pb2.CreatePostRequest(caption="hello world", media_ids=[media_id], request_id="nul-1"),
        metadata=author.metadata,
    )
    assert post.caption == "hello world" and list(post.media_ids) == [media_id]


async def test_an_operator_with_grpcurl_gets_invalid_argument_naming_the_field(post_addr: str, make_account):
    author = await make_account()
    request = json.dumps({"caption": "hello\u0000world", "media_ids": ["1"]})
    result = await asyncio.to_thread(
        grpcurl,
        "-H",
        f"x-user-id: {author.id}",
        "-d",
        request,
        post_addr,
        "glimpse.post.v1.PostService/CreatePost",
    )
    assert result.returncode != 0
    assert "Code: InvalidArgument" in result.stderr
    assert "caption: must not contain control characters: U+0000 at offset 5" in result.stderr
