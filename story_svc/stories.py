"""The rules of stories: sharing one (idempotently, with the photo attached through media_svc), reading
a user's active stories, recording views, listing viewers and deleting.

Visibility is graph_svc's rule through the shared `visibility` client (cached, see its staleness
bound): an author's stories are for whom may see their content, and a story the caller may not see
is NOT_FOUND, as if it did not exist.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

import grpc
from cachetools import LRUCache

from glimpse.events.v1 import events_pb2
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from mesh.db import Database
from mesh.errors import FailedPrecondition, NotFound, PermissionDenied, invalid_field
from mesh.identity import as_caller
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from mesh.pagination import (
    Id,
    Page,
    PageCursor,
    TimestampUs,
    decode_cursor,
    from_timestamp_us,
    page_of,
    page_size,
    timestamp_us,
)
from story_svc import repository as repo
from story_svc.repository import StoryRecord, ViewRecord
from visibility import NOT_FOLLOWER_OF_PRIVATE, VISIBLE, Visibility

log = logging.getLogger("story_svc.stories")

REQUEST_ID_MAX = 128
# media_svc's answers that mean the attach did not happen (nothing to hand back).
_REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


def story_not_found(story_id: int) -> NotFound:
    return NotFound(f"story {story_id} does not exist or has expired", reason="STORY_NOT_FOUND")


def not_author() -> PermissionDenied:
    return PermissionDenied("only the story's author may do this", reason="NOT_STORY_AUTHOR")


class ViewerCursor(PageCursor):
    """A viewers page continues after this view (newest first: earlier time, or the same time and a
    lower viewer id)."""

    before_us: TimestampUs
    before_viewer: Id


class StoryService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        ids: IdGenerator,
        media: media_pb2_grpc.MediaServiceStub,
        visibility: Visibility,
        *,
        lifetime: dt.timedelta,
        cache_items: int,
        timeout: float,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._ids = ids
        self._media = media
        self._visibility = visibility
        self._lifetime = lifetime
        self._timeout = timeout
        # story id -> (author, expiry): both never change. A story deleted since it was cached is
        # refused by the statement that reads or writes it, so the cache never serves a deleted one.
        self._stories: LRUCache[int, tuple[int, dt.datetime]] = LRUCache(cache_items)

    async def create(self, author_id: int, media_id: int, request_id: str) -> StoryRecord:
        """Shares the author's uploaded photo as a story for the configured lifetime (24 h); the story
        and `stories.created` commit together. Idempotent per (author, request_id): a retry returns
        the first call's story. INVALID_ARGUMENT (media_id, request_id) for bad fields;
        FAILED_PRECONDITION (IDEMPOTENCY_KEY_REUSED) if the request id was used for another photo;
        media_svc's refusals (PERMISSION_DENIED, FAILED_PRECONDITION "not uploaded" or "already
        attached", NOT_FOUND) reach the caller unchanged. If the write fails after the attach, the
        photo is detached again, so a retry succeeds."""
        if media_id <= 0:
            raise invalid_field("media_id", "must be a media id from an upload grant (a positive integer)")
        if len(request_id) > REQUEST_ID_MAX:
            raise invalid_field("request_id", f"must be at most {REQUEST_ID_MAX} characters")
        story_id = fresh_id = self._ids.next_id()
        if request_id:
            async with self._db.unit_of_work() as session:
                story_id, reserved_media = await repo.reserve_story_id(
                    session, author_id, request_id, fresh_id, media_id
                )
            if reserved_media != media_id:
                raise FailedPrecondition(
                    "this idempotency key was already used for a different story; use a new key for a new story",
                    reason="IDEMPOTENCY_KEY_REUSED",
                )
            if story_id != fresh_id:
                async with self._db.read_only() as session:
                    existing = await repo.get_story(session, story_id)
                if existing is not None:
                    return replace(existing, viewed=True)
        # Attach first (media_svc checks ownership and upload): a story never exists with a photo it
        # may not use. Attaching again to the same story id is a no-op.
        try:
            await self._media.AttachMedia(
                media_pb2.AttachMediaRequest(post_id=story_id, media_ids=[media_id]),
                metadata=as_caller(author_id),
                timeout=self._timeout,
            )
            return await self._write(story_id, author_id, media_id)
        except BaseException as exc:  # cancellation included: the photo may be attached all the same
            if not (isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _REFUSALS):
                await self._release_media(author_id, story_id, media_id)
            raise

    async def _write(self, story_id: int, author_id: int, media_id: int) -> StoryRecord:
        now = dt.datetime.now(dt.UTC)
        record = StoryRecord(story_id, author_id, media_id, now, now + self._lifetime)
        async with self._db.unit_of_work() as session:
            if await repo.insert_story(session, record):
                event = events_pb2.StoryCreated(story_id=story_id, author_id=author_id, media_id=media_id)
                event.create_time.FromDatetime(record.created_at)
                event.expire_time.FromDatetime(record.expire_at)
                await self._outbox.add(session, event)
            stored = await repo.get_story(session, story_id)
        assert stored is not None
        return replace(stored, viewed=True)  # the author's own

    async def _release_media(self, author_id: int, story_id: int, media_id: int) -> None:
        """Compensation for a create that failed after (possibly) attaching: the photo goes back to
        the author. Never raises (the create's own error is what the caller must see); media_svc's
        sweeper detaches a photo left on a story that never appeared."""
        extra = {"story_id": story_id, "author_id": author_id, "media_id": media_id}
        try:
            async with self._db.read_only() as session:
                if await repo.get_story(session, story_id) is not None:
                    return
            await self._media.DetachMedia(
                media_pb2.DetachMediaRequest(post_id=story_id, media_ids=[media_id]),
                metadata=as_caller(author_id),
                timeout=self._timeout,
            )
        except Exception:
            log.exception("create failed and its photo could not be detached; the sweeper will", extra=extra)

    async def of_author(self, author_id: int, viewer_id: int) -> list[StoryRecord]:
        """The author's active stories, oldest first, each with `viewed` for the viewer (always True
        for the author). For another viewer: PERMISSION_DENIED (ACCOUNT_PRIVATE) if the author is
        private and not followed by them, NOT_FOUND (USER_NOT_FOUND) if either blocks the other or the
        account does not exist."""
        if viewer_id != author_id:
            verdict = (await self._visibility.of(viewer_id, [author_id])).get(author_id)
            if verdict == NOT_FOLLOWER_OF_PRIVATE:
                raise PermissionDenied(
                    "this account is private: follow it, and once approved you will see its stories",
                    reason="ACCOUNT_PRIVATE",
                )
            if verdict != VISIBLE:
                raise NotFound(f"user {author_id} does not exist", reason="USER_NOT_FOUND")
        async with self._db.read_only() as session:
            found = await repo.active_stories(session, author_id, viewer_id)
        if viewer_id == author_id:
            return [replace(s, viewed=True) for s in found]
        return found

    async def view(self, viewer_id: int, story_id: int) -> bool:
        """Records that the viewer viewed the story; True (the story is viewed by them now).
        Idempotent: a second view records nothing. The author's own views are not recorded.
        INVALID_ARGUMENT (story_id) for an impossible id; NOT_FOUND (STORY_NOT_FOUND) for a story that
        does not exist, expired, or whose author's content the viewer may not see."""
        author_id = await self._visible_author(story_id, viewer_id)
        if author_id == viewer_id:
            return True
        async with self._db.unit_of_work() as session:
            outcome = await repo.add_view(session, story_id, viewer_id)
        if not outcome.live:
            self._stories.pop(story_id, None)
            raise story_not_found(story_id)
        return True

    async def viewers(self, caller_id: int, story_id: int, size: int, token: str) -> tuple[Page[ViewRecord], int]:
        """Who viewed the story, newest first, and the exact number of viewers (read in the same
        snapshot). PERMISSION_DENIED (NOT_STORY_AUTHOR) for anyone but its author; NOT_FOUND
        (STORY_NOT_FOUND) for a story that does not exist, expired or that the caller may not see;
        INVALID_ARGUMENT for a bad page size or token (mesh.pagination.decode_cursor)."""
        limit = page_size(size)
        scope = f"story_views:{story_id}"
        cursor = decode_cursor(token, ViewerCursor, scope)
        author_id = await self._visible_author(story_id, caller_id)
        if author_id != caller_id:
            raise not_author()
        before = (from_timestamp_us(cursor.before_us), cursor.before_viewer) if cursor else None
        async with self._db.read_only() as session:
            # The row again, not the cache: a story deleted or expired meanwhile has no viewers to show.
            story = await repo.get_story(session, story_id)
            if story is None or story.expire_at <= dt.datetime.now(dt.UTC):
                raise story_not_found(story_id)
            found = await repo.list_views(session, story_id, before, limit + 1)
            count = await repo.view_count(session, story_id)
        page = page_of(
            found,
            limit,
            scope,
            lambda view: ViewerCursor(before_us=timestamp_us(view.viewed_at), before_viewer=view.viewer_id),
        )
        return page, count

    async def delete(self, caller_id: int, story_id: int) -> bool:
        """The author deletes the story (expired or not) with its views; `stories.deleted` (media_svc
        deletes the photo) commits with it. False if it was already gone. PERMISSION_DENIED
        (NOT_STORY_AUTHOR) for a caller who may see the story but did not write it; NOT_FOUND
        (STORY_NOT_FOUND) for one who may not see it."""
        if story_id <= 0:
            raise invalid_field("story_id", "must be a story id (a positive integer)")
        async with self._db.unit_of_work() as session:
            story = await repo.lock_story(session, story_id)
            if story is None:
                return False
            if story.author_id != caller_id:
                if not await self._visibility.visible(caller_id, [story.author_id]):
                    raise story_not_found(story_id)
                raise not_author()
            await repo.delete_stories(session, [story_id])
            await self._outbox.add(session, deleted_event(story))
        self._stories.pop(story_id, None)
        return True

    async def _visible_author(self, story_id: int, viewer_id: int) -> int:
        """The author of the active story, if `viewer_id` may see it; NOT_FOUND otherwise."""
        if story_id <= 0:
            raise invalid_field("story_id", "must be a story id (a positive integer)")
        known = self._stories.get(story_id)
        if known is None:
            async with self._db.read_only() as session:
                story = await repo.get_story(session, story_id)
            if story is None:
                raise story_not_found(story_id)
            known = self._stories[story_id] = (story.author_id, story.expire_at)
        author_id, expire_at = known
        if expire_at <= dt.datetime.now(dt.UTC):
            raise story_not_found(story_id)
        if author_id != viewer_id and not await self._visibility.visible(viewer_id, [author_id]):
            raise story_not_found(story_id)
        return author_id


def deleted_event(story: StoryRecord) -> events_pb2.StoryDeleted:
    return events_pb2.StoryDeleted(story_id=story.id, author_id=story.author_id, media_id=story.media_id)
