"""kill -9 of export_svc mid-build: the export is not left half done. The builder process is killed
(SIGKILL: nothing acknowledged, nothing aborted) while it streams a 114 MiB zip into a multipart
upload; the upload is still open in the bucket at that moment. Started again, export_svc gets the
event back after its ack wait (2 s here), aborts the dead attempt's upload, builds the export from
scratch and completes it: READY on the second attempt, no upload left open, the whole archive there.

The user is bench/export.py's (1,000 posts with real photos, 10,000 likes, 5,000 followers), so the
build takes seconds and the kill lands in the middle of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from bench.export import FOLLOWERS, LIKES, POSTS, USER, load_exporter, zip_contents
from bench.feed_data import connect
from bench.stack import Stack, running_stack
from export_svc.settings import ExportSettings
from export_svc.storage import ExportStore, zip_key
from glimpse.export.v1 import export_pb2, export_pb2_grpc
from media_svc.settings import MediaSettings
from mesh.identity import as_caller

PROCESSES = ["graph_svc", "post_svc", "media_svc", "engagement_svc", "story_svc", "export_svc"]


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    processes = running_stack(PROCESSES, build_ack_wait_seconds="2")
    # running_stack blocks (and runs event loops of its own): enter and leave it off this loop.
    started = await asyncio.to_thread(processes.__enter__)
    try:
        yield started
    finally:
        await asyncio.to_thread(processes.__exit__, None, None, None)


def _row(stack: Stack, export_id: int) -> tuple[str, int, str | None]:
    with connect(stack.database_url) as conn:
        found = conn.execute(
            "SELECT state, attempts, upload_id FROM exports.exports WHERE id = %s", (export_id,)
        ).fetchone()
    assert found is not None
    return found[0], found[1], found[2]


async def _parts_sent(stack: Stack, export_id: int, within: float = 60.0) -> str:
    """Waits until the build has an upload open with parts already sent; its upload id."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        state, _, upload_id = await asyncio.to_thread(_row, stack, export_id)
        assert state in ("PENDING", "RUNNING"), state
        if upload_id is not None:
            await asyncio.sleep(1.0)  # a second into the upload: parts of the photos are out
            return upload_id
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_a_killed_builder_leaves_no_upload_and_the_export_completes(stack: Stack):
    await asyncio.to_thread(load_exporter, stack, MediaSettings(namespace=stack.namespace))
    store = ExportStore(ExportSettings(namespace=stack.namespace))
    me = as_caller(USER)
    async with grpc.aio.insecure_channel(stack.addr["export_svc"]) as channel:
        exports = export_pb2_grpc.ExportServiceStub(channel)
        created = await exports.CreateExport(export_pb2.CreateExportRequest(request_id="kill"), metadata=me)
        key = zip_key(USER, created.id)
        dead_upload = await _parts_sent(stack, created.id)
        stack.kill("export_svc")
        state, attempts, upload_id = await asyncio.to_thread(_row, stack, created.id)
        assert (state, attempts, upload_id) == ("RUNNING", 1, dead_upload)
        assert await store.open_uploads(key) == [dead_upload]
        assert await store.size(key) is None

        await asyncio.to_thread(stack.start, "export_svc")
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            export = await exports.GetExport(export_pb2.GetExportRequest(export_id=created.id), metadata=me)
            if export.state not in (export_pb2.EXPORT_STATE_PENDING, export_pb2.EXPORT_STATE_RUNNING):
                break
            assert asyncio.get_running_loop().time() < deadline, "the export was not rebuilt"
            await asyncio.sleep(0.2)
    assert export.state == export_pb2.EXPORT_STATE_READY, export.failure_reason
    assert export.attempts == 2
    assert await store.open_uploads(key) == []
    size, counts = await asyncio.to_thread(zip_contents, export.download_url)
    assert size == export.size_bytes
    assert counts == {"posts.json": POSTS, "likes.json": LIKES, "followers.json": FOLLOWERS, "media/": POSTS}
