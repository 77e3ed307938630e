"""The builder: consumes `exports.requested` and turns a PENDING export into a zip in object storage.

It reads the user's data over gRPC as the user (x-user-id, as the gateway would), page by page:
the profile, followers, following, blocks and mutes from graph_svc, posts from post_svc, comments
and likes and saves from engagement_svc, active stories from story_svc, and the original photos
(of posts and stories) through media_svc's signed URLs;
each page is written into the archive (export_svc.archive) as it arrives, so memory stays bounded
by one page and one upload part, whatever the user has.

Attempts and crashes (at-least-once delivery, mesh.bus):
- Each delivery claims the export (RUNNING, attempts + 1). An export already READY, FAILED, EXPIRED
  or erased is left alone: a redelivered event changes nothing.
- The multipart upload's id is stored before any part is sent. An attempt that fails aborts it and
  raises, so the event is redelivered after the spec's backoff; the attempt that reaches
  `max_attempts` marks the export FAILED with a reason the user can read instead. A process killed
  mid-build (kill -9) leaves the export RUNNING with its upload id: the event comes back after
  the ack wait (30 s), and that attempt aborts the dead one's upload before starting over. The
  bucket's lifecycle aborts any upload still open after a day (export_svc.storage).
  tests/faults/test_export_kill.py kills export_svc mid-upload of a 114 MiB zip and sees it rebuilt.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Histogram

from export_svc import repository as repo
from export_svc.archive import ArchiveWriter, MultipartUpload
from export_svc.readme import README
from export_svc.repository import ExportRecord
from export_svc.storage import ExportStore, OriginalReader, zip_key
from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from glimpse.story.v1 import story_pb2, story_pb2_grpc
from mesh.db import Database
from mesh.errors import DomainError
from mesh.identity import as_caller

log = logging.getLogger("export_svc.builder")

BUILDS = Counter("glimpse_export_builds_total", "Export build attempts, by outcome.", ["outcome"])
BUILD_SECONDS = Histogram(
    "glimpse_export_build_seconds", "Wall time of a successful export build.", buckets=(1, 5, 15, 60, 300, 1800)
)

# The largest page every list RPC gives (mesh.pagination's maximum), and media_svc's batch limit.
PAGE_SIZE = 100
ORIGINALS_BATCH = 100
# Extensions of the photo types media_svc accepts (media_svc.service.ACCEPTED_TYPES); others fall
# back to mimetypes, then to ".bin".
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/avif": "avif",
}


@dataclass(frozen=True)
class Upstreams:
    graph: graph_pb2_grpc.GraphServiceStub
    post: post_pb2_grpc.PostServiceStub
    media: media_pb2_grpc.MediaServiceStub
    engagement: engagement_pb2_grpc.EngagementServiceStub
    story: story_pb2_grpc.StoryServiceStub


class BuildFailed(Exception):
    """An attempt failed; `reason` is what the user reads if it was the last one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def extension(content_type: str) -> str:
    return _EXTENSIONS.get(content_type) or (mimetypes.guess_extension(content_type) or ".bin").lstrip(".")


def _time(stamp: Timestamp) -> str | None:
    """RFC 3339 (UTC), or None for an unset timestamp."""
    return stamp.ToJsonString() if stamp.seconds or stamp.nanos else None


def _user(user: graph_pb2.User) -> dict[str, Any]:
    return {"user_id": str(user.id), "username": user.username, "display_name": user.display_name}


class ExportBuilder:
    def __init__(
        self,
        db: Database,
        store: ExportStore,
        upstreams: Upstreams,
        originals: OriginalReader,
        *,
        timeout: float,
        part_size: int,
        max_attempts: int,
    ) -> None:
        self._db = db
        self._store = store
        self._up = upstreams
        self._originals = originals
        self._timeout = timeout
        self._part_size = part_size
        self._max_attempts = max_attempts

    async def handle(self, event: events_pb2.ExportRequested) -> None:
        """One attempt at building the export named by `event` (see the module docstring). Raises to
        have the event redelivered (a failed attempt before the last one, or an outage of our own
        database or store)."""
        async with self._db.unit_of_work() as session:
            record = await repo.claim(session, event.export_id)
        if record is None:
            return
        if record.upload_id and record.object_key:
            # An earlier attempt died mid-upload (its process was killed): nothing of it is reused.
            await self._store.abort_upload(record.object_key, record.upload_id)
        key = zip_key(record.user_id, record.id)
        upload_id = await self._store.start_upload(key)
        async with self._db.unit_of_work() as session:
            recorded = await repo.set_upload(session, record.id, key, upload_id)
        if not recorded:  # erased or expired meanwhile
            await self._store.abort_upload(key, upload_id)
            return
        extra = {"export_id": record.id, "user_id": record.user_id, "attempt": record.attempts}
        started = time.monotonic()
        try:
            size = await self._write(record, MultipartUpload(self._store, key, upload_id, self._part_size))
        except Exception as exc:  # every failure is an attempt that failed
            reason = exc.reason if isinstance(exc, BuildFailed) else _describe(exc)
            await self._store.abort_upload(key, upload_id)
            async with self._db.unit_of_work() as session:
                if record.attempts >= self._max_attempts:
                    await repo.mark_failed(session, record.id, f"{reason}; request a new export")
                    last = True
                else:
                    await repo.note_failure(session, record.id, reason)
                    last = False
            BUILDS.labels("failed" if last else "retried").inc()
            # An error we did not anticipate (not an upstream's refusal) gets its traceback logged.
            log.warning(
                "export attempt failed",
                extra={**extra, "reason": reason, "final": last},
                exc_info=not isinstance(exc, BuildFailed),
            )
            if last:
                return
            raise
        async with self._db.unit_of_work() as session:
            ready = await repo.mark_ready(session, record.id, key, size)
        if not ready:  # erased (or expired) while it was built: the zip must not outlive the row
            await self._store.delete([key])
            return
        BUILDS.labels("ready").inc()
        BUILD_SECONDS.observe(time.monotonic() - started)
        log.info("export ready", extra={**extra, "size_bytes": size})

    async def on_dead_letter(self, event: events_pb2.ExportRequested | None, error: str) -> None:
        """Every delivery failed before an attempt could decide (our database or store kept failing):
        the export is FAILED rather than PENDING forever."""
        if event is None:
            return
        async with self._db.unit_of_work() as session:
            await repo.mark_failed(
                session,
                event.export_id,
                "your export could not be built (our storage kept failing); request a new export",
            )

    async def _write(self, record: ExportRecord, upload: MultipartUpload) -> int:
        """Writes the whole archive into `upload` and completes it; the zip's size in bytes."""
        uid = record.user_id
        me = as_caller(uid)
        archive = ArchiveWriter(upload)
        await archive.add_text("README.txt", README)
        profile = await self._call("your profile", self._up.graph.GetUser, graph_pb2.GetUserRequest(user_id=uid), me)
        await archive.add_json(
            "profile.json",
            {
                "user_id": str(profile.id),
                "username": profile.username,
                "display_name": profile.display_name,
                "bio": profile.bio,
                "website": profile.website,
                "is_private": profile.is_private,
                "follower_count": profile.follower_count,
                "following_count": profile.following_count,
                "create_time": _time(profile.create_time),
                "avatar_url": profile.avatar_url if profile.HasField("avatar_url") else None,
                "export_id": str(record.id),
                "export_create_time": record.created_at.isoformat(),
            },
        )
        # Photo file names: media id -> extension, learnt while writing posts.json (ints and short
        # strings: 10 per post at most).
        files: dict[int, str] = {}
        await archive.add_json_array("posts.json", self._posts(uid, files))
        await archive.add_json_array("comments.json", self._comments(uid))
        await archive.add_json_array("likes.json", self._likes(uid))
        await archive.add_json_array("saves.json", self._saves(uid))
        parent = f"users/{uid}"
        await archive.add_json_array(
            "followers.json",
            self._follows("your followers", self._up.graph.ListFollowers, graph_pb2.ListFollowersRequest, parent, me),
        )
        await archive.add_json_array(
            "following.json",
            self._follows("whom you follow", self._up.graph.ListFollowing, graph_pb2.ListFollowingRequest, parent, me),
        )
        await archive.add_json_array("blocks.json", self._relations("your blocks", uid, blocks=True))
        await archive.add_json_array("mutes.json", self._relations("your mutes", uid, blocks=False))
        await archive.add_json_array("stories.json", await self._stories(uid, files))
        ids = list(files)
        for start in range(0, len(ids), ORIGINALS_BATCH):
            # Signed just before they are read: each URL works for 15 minutes.
            batch = await self._originals_of(uid, ids[start : start + ORIGINALS_BATCH])
            for original in batch:
                await archive.add_file(
                    f"media/{original.media_id}.{files[original.media_id]}", self._photo(original.url)
                )
        return await archive.finish()

    async def _posts(self, uid: int, files: dict[int, str]) -> AsyncIterator[dict[str, Any]]:
        token = ""
        while True:
            page = await self._call(
                "your posts",
                self._up.post.ListPosts,
                post_pb2.ListPostsRequest(parent=f"users/{uid}", page_size=PAGE_SIZE, page_token=token),
                as_caller(uid),
            )
            media_ids = [m for post in page.posts for m in post.media_ids]
            stored: dict[int, str] = {}
            for start in range(0, len(media_ids), ORIGINALS_BATCH):
                for original in await self._originals_of(uid, media_ids[start : start + ORIGINALS_BATCH]):
                    stored[original.media_id] = extension(original.content_type)
            files.update(stored)
            for post in page.posts:
                location = None
                if post.HasField("location") and post.location.name:
                    location = {
                        "name": post.location.name,
                        "latitude": post.location.latitude,
                        "longitude": post.location.longitude,
                    }
                yield {
                    "post_id": str(post.id),
                    "caption": post.caption,
                    "hashtags": list(post.hashtags),
                    "location": location,
                    "photos": [
                        {"media_id": str(m), "file": f"media/{m}.{stored[m]}" if m in stored else None}
                        for m in post.media_ids
                    ],
                    "create_time": _time(post.create_time),
                    "update_time": _time(post.update_time),
                }
            if not (token := page.next_page_token):
                return

    async def _stories(self, uid: int, files: dict[int, str]) -> AsyncIterator[dict[str, Any]]:
        """The user's active stories (one message: a day's worth), their photos added to `files`."""
        found = await self._call(
            "your stories",
            self._up.story.ListStories,
            story_pb2.ListStoriesRequest(parent=f"users/{uid}"),
            as_caller(uid),
        )
        stories = list(found.stories)
        stored: dict[int, str] = {}
        media_ids = [story.media_id for story in stories]
        for start in range(0, len(media_ids), ORIGINALS_BATCH):
            for original in await self._originals_of(uid, media_ids[start : start + ORIGINALS_BATCH]):
                stored[original.media_id] = extension(original.content_type)
        files.update(stored)

        async def rows() -> AsyncIterator[dict[str, Any]]:
            for story in stories:
                m = story.media_id
                yield {
                    "story_id": str(story.id),
                    "photo": {"media_id": str(m), "file": f"media/{m}.{stored[m]}" if m in stored else None},
                    "create_time": _time(story.create_time),
                    "expire_time": _time(story.expire_time),
                }

        return rows()

    async def _originals_of(self, uid: int, media_ids: list[int]) -> list[media_pb2.Original]:
        if not media_ids:
            return []
        found = await self._call(
            "your photos",
            self._up.media.BatchGetOriginals,
            media_pb2.BatchGetOriginalsRequest(media_ids=media_ids),
            as_caller(uid),
        )
        return list(found.originals)

    async def _photo(self, url: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._originals.chunks(url):
                yield chunk
        except DomainError as exc:
            raise BuildFailed(f"your export could not be built: reading your photos failed ({exc.message})") from exc

    async def _comments(self, uid: int) -> AsyncIterator[dict[str, Any]]:
        token = ""
        while True:
            page = await self._call(
                "your comments",
                self._up.engagement.ListCommentsByUser,
                engagement_pb2.ListCommentsByUserRequest(page_size=PAGE_SIZE, page_token=token),
                as_caller(uid),
            )
            for comment in page.comments:
                yield {
                    "comment_id": str(comment.id),
                    "post_id": str(comment.post_id),
                    "text": comment.text,
                    "parent_comment_id": str(comment.parent_comment_id) if comment.parent_comment_id else None,
                    "reply_to_comment_id": str(comment.reply_to_comment_id) if comment.reply_to_comment_id else None,
                    "create_time": _time(comment.create_time),
                }
            if not (token := page.next_page_token):
                return

    async def _likes(self, uid: int) -> AsyncIterator[dict[str, Any]]:
        token = ""
        while True:
            page = await self._call(
                "your likes",
                self._up.engagement.ListLikesByUser,
                engagement_pb2.ListLikesByUserRequest(page_size=PAGE_SIZE, page_token=token),
                as_caller(uid),
            )
            for like in page.liked_posts:
                yield {"post_id": str(like.post_id), "like_time": _time(like.create_time)}
            if not (token := page.next_page_token):
                return

    async def _saves(self, uid: int) -> AsyncIterator[dict[str, Any]]:
        token = ""
        while True:
            page = await self._call(
                "your saved posts",
                self._up.engagement.ListSavedPosts,
                engagement_pb2.ListSavedPostsRequest(page_size=PAGE_SIZE, page_token=token),
                as_caller(uid),
            )
            for save in page.saved_posts:
                yield {"post_id": str(save.post_id), "save_time": _time(save.save_time)}
            if not (token := page.next_page_token):
                return

    async def _follows(
        self,
        what: str,
        method: Callable[..., Awaitable[Any]],
        request_type: type[graph_pb2.ListFollowersRequest] | type[graph_pb2.ListFollowingRequest],
        parent: str,
        me: tuple[tuple[str, str], ...],
    ) -> AsyncIterator[dict[str, Any]]:
        token = ""
        while True:
            page = await self._call(
                what, method, request_type(parent=parent, page_size=PAGE_SIZE, page_token=token), me
            )
            for follow in page.follows:
                yield {**_user(follow.user), "follow_time": _time(follow.create_time)}
            if not (token := page.next_page_token):
                return

    async def _relations(self, what: str, uid: int, *, blocks: bool) -> AsyncIterator[dict[str, Any]]:
        token = ""
        while True:
            if blocks:
                found = await self._call(
                    what,
                    self._up.graph.ListBlocks,
                    graph_pb2.ListBlocksRequest(page_size=PAGE_SIZE, page_token=token),
                    as_caller(uid),
                )
                rows = [(b.user, b.create_time) for b in found.blocks]
            else:
                muted = await self._call(
                    what,
                    self._up.graph.ListMutes,
                    graph_pb2.ListMutesRequest(page_size=PAGE_SIZE, page_token=token),
                    as_caller(uid),
                )
                found, rows = muted, [(m.user, m.create_time) for m in muted.mutes]
            for user, when in rows:
                yield {**_user(user), ("block_time" if blocks else "mute_time"): _time(when)}
            if not (token := found.next_page_token):
                return

    async def _call(
        self, what: str, method: Callable[..., Awaitable[Any]], request: Message, metadata: tuple[tuple[str, str], ...]
    ) -> Any:
        """`method(request)` as the user; a failure becomes BuildFailed naming `what` was being read."""
        try:
            return await method(request, metadata=metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise BuildFailed(
                f"your export could not be built: reading {what} failed "
                f"({_CODE_WORDS.get(exc.code(), exc.code().name.lower())})"
            ) from exc


_CODE_WORDS = {
    grpc.StatusCode.UNAVAILABLE: "the service was unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the service did not answer in time",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the service was overloaded",
    grpc.StatusCode.INTERNAL: "the service had an internal error",
}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return f"your export could not be built: {exc.message}"
    return "your export could not be built: an unexpected error occurred"
