"""Fixtures for export_svc tests: the export store of the run, direct SQL on the exports schema, a
user who has done a bit of everything (posts with real photos, comments, likes, saves, follows both
ways, a block and a mute), and waiting for an export to settle."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from export_svc.settings import ExportSettings
from export_svc.storage import ExportStore
from glimpse.engagement.v1 import engagement_pb2
from glimpse.export.v1 import export_pb2, export_pb2_grpc
from glimpse.graph.v1 import graph_pb2
from glimpse.post.v1 import post_pb2
from glimpse.story.v1 import story_pb2, story_pb2_grpc
from tests.conftest import Account, Stubs

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "photos"
# Real photos of the shared dataset: two JPEGs and a PNG, 0.8 MB together.
PHOTO_FILES = ("hubble_deep_field.jpg", "rocket.jpg", "coffee.png")


@pytest.fixture(scope="session")
async def store(export_settings: ExportSettings) -> ExportStore:
    store = ExportStore(export_settings)
    await store.ensure_bucket()
    return store


@pytest.fixture(scope="session")
async def exports(export_addr: str) -> AsyncIterator[export_pb2_grpc.ExportServiceStub]:
    import grpc

    async with grpc.aio.insecure_channel(export_addr) as channel:
        yield export_pb2_grpc.ExportServiceStub(channel)


@pytest.fixture(scope="session")
async def sql(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def run_sql(sql: AsyncEngine, query: str, **params: Any) -> list[Any]:
    async with sql.begin() as conn:
        result = await conn.execute(text(query), params)
        return list(result) if result.returns_rows else []


@dataclass
class Activity:
    """What `busy_user` did, as the export must show it."""

    user: Account
    posts: list[int] = field(default_factory=list)
    # media id -> sha256 of the bytes uploaded
    photos: dict[int, str] = field(default_factory=dict)
    comments: list[int] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)
    saved: list[int] = field(default_factory=list)
    stories: list[int] = field(default_factory=list)
    follower: Account | None = None
    followee: Account | None = None
    blocked: Account | None = None
    muted: Account | None = None


MakeActivity = Callable[[], Awaitable[Activity]]


@pytest.fixture(scope="session")
async def story(story_addr: str) -> AsyncIterator[story_pb2_grpc.StoryServiceStub]:
    import grpc

    async with grpc.aio.insecure_channel(story_addr) as channel:
        yield story_pb2_grpc.StoryServiceStub(channel)


@pytest.fixture
def busy_user(stubs: Stubs, story, make_account, upload_photo) -> MakeActivity:
    async def make() -> Activity:
        ada, other = await make_account(), await make_account()
        done = Activity(ada)
        # Two posts: one with two photos and a location, one with a photo.
        for n, names in enumerate([PHOTO_FILES[:2], PHOTO_FILES[2:]]):
            media_ids = []
            for name in names:
                data = (PHOTOS / name).read_bytes()
                kind = "image/png" if name.endswith(".png") else "image/jpeg"
                media_id = await upload_photo(ada, data, kind)
                done.photos[media_id] = hashlib.sha256(data).hexdigest()
                media_ids.append(media_id)
            request = post_pb2.CreatePostRequest(
                caption=f"post {n} #glimpse", media_ids=media_ids, request_id=f"export-post-{ada.id}-{n}"
            )
            if n == 0:
                request.location.CopyFrom(post_pb2.Location(name="Reed College", latitude=45.48, longitude=-122.63))
            done.posts.append((await stubs.post.CreatePost(request, metadata=ada.metadata)).id)
        # A story, its photo the second JPEG again (another upload).
        data = (PHOTOS / PHOTO_FILES[1]).read_bytes()
        story_media = await upload_photo(ada, data, "image/jpeg")
        done.photos[story_media] = hashlib.sha256(data).hexdigest()
        shared = await story.CreateStory(
            story_pb2.CreateStoryRequest(media_id=story_media, request_id=f"story-{ada.id}"), metadata=ada.metadata
        )
        done.stories.append(shared.id)
        theirs = (
            await stubs.post.CreatePost(
                post_pb2.CreatePostRequest(media_ids=[await upload_photo(other)], request_id=f"other-{other.id}"),
                metadata=other.metadata,
            )
        ).id
        for post_id in (theirs, done.posts[0]):
            await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=ada.metadata)
            done.liked.insert(0, post_id)
        await stubs.engagement.SavePost(engagement_pb2.SavePostRequest(post_id=theirs), metadata=ada.metadata)
        done.saved.append(theirs)
        comment = await stubs.engagement.CreateComment(
            engagement_pb2.CreateCommentRequest(post_id=theirs, text="Lovely, @nobody!", request_id="c1"),
            metadata=ada.metadata,
        )
        reply = await stubs.engagement.CreateComment(
            engagement_pb2.CreateCommentRequest(
                post_id=theirs, text="Still lovely", parent_comment_id=comment.id, request_id="c2"
            ),
            metadata=ada.metadata,
        )
        done.comments = [comment.id, reply.id]
        done.follower, done.followee = other, await make_account()
        await stubs.graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=ada.id), metadata=other.metadata)
        await stubs.graph.FollowUser(
            graph_pb2.FollowUserRequest(target_user_id=done.followee.id), metadata=ada.metadata
        )
        done.blocked, done.muted = await make_account(), await make_account()
        await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=done.blocked.id), metadata=ada.metadata)
        await stubs.graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=done.muted.id), metadata=ada.metadata)
        return done

    return make


async def settled(
    exports: export_pb2_grpc.ExportServiceStub, account: Account, export_id: int, within: float = 60.0
) -> export_pb2.Export:
    """The export once READY, FAILED or EXPIRED (AssertionError after `within` seconds)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        export = await exports.GetExport(export_pb2.GetExportRequest(export_id=export_id), metadata=account.metadata)
        if export.state not in (export_pb2.EXPORT_STATE_PENDING, export_pb2.EXPORT_STATE_RUNNING):
            return export
        assert asyncio.get_running_loop().time() < deadline, f"export {export_id} still {export.state}"
        await asyncio.sleep(0.1)
