"""The builder's attempts, run directly on export rows written without an event (so the running
export_svc never sees them): a failing upstream is retried until the last attempt marks the export
FAILED with a reason the user can read; a build killed mid-upload leaves its upload recorded, and
the next attempt aborts it and builds the export from scratch."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from export_svc import repository as repo
from export_svc.builder import BuildFailed, ExportBuilder, Upstreams
from export_svc.settings import ExportSettings
from export_svc.storage import ExportStore, OriginalReader, zip_key
from glimpse.events.v1 import events_pb2
from glimpse.post.v1 import post_pb2_grpc
from glimpse.story.v1 import story_pb2_grpc
from mesh.db import Database
from mesh.ids import IdGenerator
from tests.conftest import Account, Stubs
from tests.export_svc.conftest import MakeActivity

ids = IdGenerator(8191)


@pytest.fixture(scope="session")
async def db(export_settings: ExportSettings) -> AsyncIterator[Database]:
    database = Database(export_settings.database_url, pool_size=2)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def story(story_addr: str) -> AsyncIterator[story_pb2_grpc.StoryServiceStub]:
    async with grpc.aio.insecure_channel(story_addr) as channel:
        yield story_pb2_grpc.StoryServiceStub(channel)


def builder(
    db: Database, store: ExportStore, stubs: Stubs, story: Any, *, max_attempts: int = 3, **replaced: Any
) -> ExportBuilder:
    upstreams = Upstreams(
        graph=stubs.graph, post=stubs.post, media=stubs.media, engagement=stubs.engagement, story=story
    )
    for name, stub in replaced.items():
        upstreams = Upstreams(**{**upstreams.__dict__, name: stub})
    return ExportBuilder(
        db, store, upstreams, OriginalReader(), timeout=5, part_size=5 * 1024 * 1024, max_attempts=max_attempts
    )


async def requested(db: Database, account: Account) -> events_pb2.ExportRequested:
    """An export row as CreateExport writes it, without its event; the event a builder would get."""
    export_id = ids.next_id()
    async with db.unit_of_work() as session:
        now = dt.datetime.now(dt.UTC)
        assert await repo.insert_export(
            session, export_id, account.id, f"direct-{export_id}", now, now + dt.timedelta(days=7)
        )
    return events_pb2.ExportRequested(event_id=ids.next_id(), export_id=export_id, user_id=account.id)


async def row(db: Database, export_id: int) -> repo.ExportRecord:
    async with db.read_only() as session:
        found = await repo.get_export(session, export_id)
    assert found is not None
    return found


async def test_an_upstream_down_is_retried_then_failed_with_a_reason(db, store, stubs, story, make_account):
    ada = await make_account()
    event = await requested(db, ada)
    async with grpc.aio.insecure_channel("127.0.0.1:1") as nowhere:  # nothing listens on port 1
        failing = builder(db, store, stubs, story, max_attempts=2, post=post_pb2_grpc.PostServiceStub(nowhere))
        with pytest.raises(BuildFailed):  # the bus redelivers it after its backoff
            await failing.handle(event)
        first = await row(db, event.export_id)
        assert (first.state, first.attempts, first.upload_id) == ("RUNNING", 1, None)
        assert await store.open_uploads(zip_key(ada.id, event.export_id)) == []
        await failing.handle(event)  # the last attempt: FAILED, and the event is acked
    failed = await row(db, event.export_id)
    assert (failed.state, failed.attempts) == ("FAILED", 2)
    assert failed.failure_reason == (
        "your export could not be built: reading your posts failed (the service was unavailable); request a new export"
    )
    assert await store.open_uploads(zip_key(ada.id, event.export_id)) == []
    await builder(db, store, stubs, story).handle(event)  # a redelivery changes nothing
    assert (await row(db, event.export_id)).state == "FAILED"


class StalledPosts:
    """A post_svc that never answers ListPosts: the build is caught mid-way, its upload open."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()

    async def ListPosts(self, request: Any, **kwargs: Any) -> Any:
        self.reached.set()
        await asyncio.Event().wait()


async def test_a_build_killed_mid_upload_is_aborted_and_rebuilt(db, store, stubs, story, busy_user: MakeActivity):
    done = await busy_user()
    event = await requested(db, done.user)
    stalled = StalledPosts()
    task = asyncio.create_task(builder(db, store, stubs, story, post=stalled).handle(event))
    await asyncio.wait_for(stalled.reached.wait(), 30)
    # Cancelled, the attempt runs none of its failure handling: what kill -9 leaves behind.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    dead = await row(db, event.export_id)
    key = zip_key(done.user.id, event.export_id)
    assert dead.state == "RUNNING" and dead.upload_id is not None
    assert await store.open_uploads(key) == [dead.upload_id]

    await builder(db, store, stubs, story).handle(event)  # the redelivery after the ack wait
    rebuilt = await row(db, event.export_id)
    assert (rebuilt.state, rebuilt.attempts, rebuilt.upload_id) == ("READY", 2, None)
    assert await store.open_uploads(key) == []
    assert await store.size(key) == rebuilt.size_bytes
    url = store.presign_download(key, dt.timedelta(minutes=1), "x.zip")
    import httpx

    async with httpx.AsyncClient() as client:
        archive = zipfile.ZipFile(io.BytesIO((await client.get(url)).content))
    assert len([n for n in archive.namelist() if n.startswith("media/")]) == len(done.photos)
