"""media_svc fixtures: its schema in the run's database, its own bucket (named for the run's namespace)
on the local S3 endpoint, the API and the rendition worker in-process, and upload helpers that do
exactly what a client does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from minio import Minio
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from glimpse.events.v1 import events_pb2
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from media_svc.app import open_store
from media_svc.images import PixelBudget
from media_svc.placeholders import Placeholders
from media_svc.settings import MediaSettings
from media_svc.storage import admin_client
from mesh.bus import Bus
from mesh.db import Database
from mesh.events import EventType
from mesh.ids import IdGenerator


@pytest.fixture(scope="session")
async def media(media_addr: str) -> AsyncIterator[media_pb2_grpc.MediaServiceStub]:
    async with grpc.aio.insecure_channel(media_addr) as channel:
        yield media_pb2_grpc.MediaServiceStub(channel)


@pytest.fixture
async def placeholders(media_settings: MediaSettings) -> AsyncIterator[Placeholders]:
    """The worker's placeholder maker, in-process: tests call it as its consumer would on an event."""
    db = Database(media_settings.database_url, pool_size=2)
    try:
        yield Placeholders(
            db,
            await open_store(media_settings),
            max_bytes=media_settings.media_max_bytes,
            max_pixels=media_settings.media_max_pixels,
            concurrency=2,
            pixels=PixelBudget(media_settings.media_max_pixels),
        )
    finally:
        await db.dispose()


@pytest.fixture
async def s3() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, like a phone's, for the object store."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


Uploader = Callable[..., Awaitable[media_pb2.UploadGrant]]


@pytest.fixture
def upload(media: media_pb2_grpc.MediaServiceStub, s3: httpx.AsyncClient) -> Uploader:
    """Asks for a grant as `account` and POSTs `data` with the grant's form, as a client does."""

    async def run(account, data: bytes, content_type: str = "image/jpeg") -> media_pb2.UploadGrant:
        grant = await media.CreateUploadGrant(
            media_pb2.CreateUploadGrantRequest(content_type=content_type, size_bytes=len(data)),
            metadata=account.metadata,
        )
        response = await s3.post(grant.url, data=dict(grant.form_fields), files={"file": ("photo", data, content_type)})
        assert response.status_code in (200, 201, 204), response.text
        return grant

    return run


async def upload_avatar(
    media: media_pb2_grpc.MediaServiceStub, s3: httpx.AsyncClient, account, data: bytes
) -> media_pb2.UploadGrant:
    """Asks for a grant with purpose AVATAR as `account` and POSTs `data` (a JPEG) with its form."""
    grant = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(
            content_type="image/jpeg", size_bytes=len(data), purpose=media_pb2.MEDIA_PURPOSE_AVATAR
        ),
        metadata=account.metadata,
    )
    response = await s3.post(grant.url, data=dict(grant.form_fields), files={"file": ("photo", data, "image/jpeg")})
    assert response.status_code in (200, 201, 204), response.text
    return grant


_ids = IdGenerator()


def new_post_id() -> int:
    """A post id as post_svc would mint it."""
    return _ids.next_id()


async def publish_post_created(bus: Bus, post_id: int, author_id: int, media_ids: list[int]) -> None:
    """What post_svc's outbox relay publishes once a post is committed. Each call is a new event id,
    so publishing the same post twice hands the worker the event twice, as a redelivery would."""
    event_id = _ids.next_id()
    event = events_pb2.PostCreated(event_id=event_id, post_id=post_id, author_id=author_id, media_ids=media_ids)
    await bus.publish_event(event)


async def wait_until_settled(
    media: media_pb2_grpc.MediaServiceStub, media_ids: list[int], within: float = 20.0
) -> list[media_pb2.Media]:
    """The media once none is PENDING or PROCESSING any more (fails the test after `within` seconds)."""
    settled = {media_pb2.MEDIA_STATUS_READY, media_pb2.MEDIA_STATUS_FAILED}
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=media_ids))).media
        if len(found) == len(media_ids) and all(m.status in settled for m in found):
            return list(found)
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"media not settled after {within}s: {[(m.id, m.status) for m in found]}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
def s3_admin(media_settings: MediaSettings) -> Minio:
    return admin_client(media_settings)


def error_details(exc: grpc.aio.AioRpcError) -> tuple[str, dict[str, str], dict[str, str]]:
    """(ErrorInfo reason, its metadata, BadRequest field -> description) of a failed call."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status details"
    reason, metadata, fields = "", {}, {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field: v.description for v in bad.field_violations}
    return reason, metadata, fields


async def wait_until_consumed(bus: Bus, durable: str = "media_renditions", within: float = 20.0) -> None:
    """Waits until the worker's durable consumer has acknowledged everything published so far."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        info = await bus.js.consumer_info(bus.stream("POSTS"), f"{bus.namespace}_{durable}")
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"consumer {durable} still busy after {within}s: {info}")
        await asyncio.sleep(0.05)


async def media_events(bus: Bus, kind: EventType[Any], media_id: int, settle: float = 0.5) -> list:
    """Every MEDIA_READY / MEDIA_FAILED event about `media_id` stored so far (after `settle` s)."""
    await asyncio.sleep(settle)
    sub = await bus.js.pull_subscribe(
        bus.subject(kind.subject),
        stream=bus.stream(kind.stream),
        config=ConsumerConfig(
            name=f"probe_{uuid.uuid4().hex[:8]}", ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL
        ),
    )
    found = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.3)
            except TimeoutError:
                return found
            for msg in batch:
                event = kind.decode(msg.data)
                if event.media_id == media_id:
                    assert msg.headers["Nats-Msg-Id"] == str(event.event_id)
                    found.append(event)
    finally:
        await sub.unsubscribe()
