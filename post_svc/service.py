"""The rules of posts. Raises mesh.errors.DomainError subclasses; media_svc's refusals pass through."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

import grpc

from glimpse.events.v1 import events_pb2
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from mesh.db import Database, Session
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, invalid_field
from mesh.identity import as_caller
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from mesh.pagination import Id, Page, PageCursor, decode_cursor, page_of, page_size
from post_svc import repository as repo
from post_svc import tag_repository as tag_repo
from post_svc.captions import Location, check_caption, hashtags_of, mentions_of
from post_svc.repository import PostRecord
from visibility import NOT_FOLLOWER_OF_PRIVATE, VISIBLE, Visibility

log = logging.getLogger("post_svc.service")

MEDIA_MIN, MEDIA_MAX = 1, 10
MAX_BATCH = 100
REQUEST_ID_MAX = 128


class PostCursor(PageCursor):
    """A profile grid page starts below this post id (newest first)."""

    before: Id


class PostService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        ids: IdGenerator,
        media: media_pb2_grpc.MediaServiceStub,
        *,
        visibility: Visibility,
        timeout: float,
    ) -> None:
        self._visibility = visibility
        self._db = db
        self._outbox = outbox
        self._ids = ids
        self._media = media
        self._timeout = timeout

    async def create(
        self, author_id: int, caption: str, media_ids: list[int], location: Location | None, request_id: str
    ) -> PostRecord:
        """Creates a post from the author's uploaded media; the post and `posts.created` commit together.

        Every field is checked before anything changes (control characters already were, by
        mesh.validation). If a step fails after the attach, the media are detached again (see
        `_release_media`), so a retry succeeds with the same request id or with none. Idempotent
        per (author, request_id): a retry returns the first call's post. INVALID_ARGUMENT for bad
        fields, FAILED_PRECONDITION (reason IDEMPOTENCY_KEY_REUSED) if the request id was used for a
        different request; media_svc's refusals (PERMISSION_DENIED, FAILED_PRECONDITION "not
        uploaded" or "already attached", NOT_FOUND) reach the caller unchanged.
        """
        caption = check_caption(caption)
        _check_media_ids(media_ids)
        if len(request_id) > REQUEST_ID_MAX:
            raise invalid_field("request_id", f"must be at most {REQUEST_ID_MAX} characters")
        fresh_id = self._ids.next_id()
        post_id = fresh_id
        if request_id:
            post_id = await self._reserve(author_id, request_id, fresh_id, _fingerprint(caption, media_ids, location))
            # Only a retry (the key already held an earlier id) can find its post written already.
            if post_id != fresh_id:
                async with self._db.read_only() as session:
                    existing = await repo.get_post(session, post_id)
                if existing is not None:
                    return existing
        # Attach before writing the post: media_svc checks ownership and upload, and the post never
        # exists with media it may not use. Attaching again to the same post id is a no-op.
        try:
            await self._media.AttachMedia(
                media_pb2.AttachMediaRequest(post_id=post_id, media_ids=media_ids),
                metadata=as_caller(author_id),
                timeout=self._timeout,
            )
            return await self._write(post_id, author_id, caption, media_ids, location)
        except BaseException as exc:  # cancellation included: the media may be attached all the same
            if not _attach_refused(exc):
                await self._release_media(author_id, post_id, media_ids)
            raise

    async def _write(
        self, post_id: int, author_id: int, caption: str, media_ids: list[int], location: Location | None
    ) -> PostRecord:
        """Inserts the post, its tags and its `posts.created` in one unit of work; the stored post."""
        now = dt.datetime.now(dt.UTC)
        record = PostRecord(
            id=post_id,
            author_id=author_id,
            caption=caption,
            hashtags=hashtags_of(caption),
            location=location,
            media_ids=media_ids,
            deleted=False,
            created_at=now,
            updated_at=now,
        )
        async with self._db.unit_of_work() as session:
            stored = await repo.insert_post(session, record)
            if stored is not None:
                event = events_pb2.PostCreated(
                    post_id=post_id, author_id=author_id, media_ids=media_ids, mentioned_usernames=mentions_of(caption)
                )
                event.create_time.FromDatetime(record.created_at)
                await self._outbox.add(session, event)
                await tag_repo.retag_post(session, post_id, [], record.hashtags)  # last: see retag_post
            else:  # a retry that raced the first call: the first call's post
                stored = await repo.get_post(session, post_id)
        assert stored is not None
        return stored

    async def _release_media(self, author_id: int, post_id: int, media_ids: list[int]) -> None:
        """Compensation for a create that failed after (possibly) attaching: hands the media back to
        the author (DetachMedia), so that a retry with or without the same request id can use them.

        Never raises: the create's own error is what the caller must see. The media stay attached
        when the post turns out to be stored (an in-doubt commit, or a concurrent retry with the same
        request id that got through) or when that cannot be read; media_svc's sweeper detaches media
        left on a post that never appeared.
        """
        extra = {"post_id": post_id, "author_id": author_id, "media_ids": media_ids}
        try:
            async with self._db.read_only() as session:
                stored = await repo.get_post(session, post_id)
        except Exception:
            log.warning(
                "create failed; cannot tell whether the post was stored, media left attached",
                exc_info=True,
                extra=extra,
            )
            return
        if stored is not None:
            return
        try:
            await self._media.DetachMedia(
                media_pb2.DetachMediaRequest(post_id=post_id, media_ids=media_ids),
                metadata=as_caller(author_id),
                timeout=self._timeout,
            )
        except Exception:
            log.exception("create failed and its media could not be detached; the sweeper will", extra=extra)
        else:
            log.info("create failed; its media were detached", extra=extra)

    async def _reserve(self, author_id: int, request_id: str, post_id: int, fingerprint: bytes) -> int:
        # One insert (a retried key reads it back): it commits alone, with nothing to roll back.
        async with self._db.unit_of_work(atomic=False) as session:
            reserved, stored_fingerprint = await repo.reserve_post_id(
                session, author_id, request_id, post_id, fingerprint
            )
        if stored_fingerprint != fingerprint:
            raise FailedPrecondition(
                "this idempotency key was already used for a different post; use a new key for a new post",
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        return reserved

    async def get(self, post_id: int, viewer_id: int | None) -> PostRecord:
        """The live post; NOT_FOUND (POST_NOT_FOUND) if it never existed, was deleted, or `viewer_id`
        may not see its author's content (a private account they do not follow, a block either way:
        as if it did not exist). `viewer_id` None: a service acting for no user, which sees all."""
        async with self._db.read_only() as session:
            post = await repo.get_post(session, post_id)
        if post is None or post.deleted or not await self._visible_to(viewer_id, [post]):
            raise NotFound(f"post {post_id} does not exist", reason="POST_NOT_FOUND")
        return post

    async def batch_get(self, post_ids: list[int], viewer_id: int | None) -> list[PostRecord]:
        """The live posts of `post_ids` in request order, leaving out what does not exist or
        `viewer_id` may not see (see `get`). INVALID_ARGUMENT (post_ids) for more than 100 ids."""
        if len(post_ids) > MAX_BATCH:
            raise invalid_field("post_ids", f"at most {MAX_BATCH} ids per call")
        if not post_ids:
            return []
        async with self._db.read_only() as session:
            found = await repo.get_posts(session, list(set(post_ids)))
        posts = [found[i] for i in post_ids if i in found]
        return await self._visible_to(viewer_id, posts)

    async def _visible_to(self, viewer_id: int | None, posts: list[PostRecord]) -> list[PostRecord]:
        if viewer_id is None or not posts:
            return posts
        others = [p.author_id for p in posts if p.author_id != viewer_id]
        allowed = await self._visibility.visible(viewer_id, others) if others else set()
        return [p for p in posts if p.author_id == viewer_id or p.author_id in allowed]

    async def list_by_author(self, author_id: int, viewer_id: int | None, size: int, token: str) -> Page[PostRecord]:
        """The author's live posts, newest first (the profile grid). For a `viewer_id` who is not the
        author: PERMISSION_DENIED (ACCOUNT_PRIVATE) if the author is private and not followed by them,
        NOT_FOUND (USER_NOT_FOUND) if either blocks the other or the account does not exist.
        INVALID_ARGUMENT for a bad page size or token (see mesh.pagination.decode_cursor)."""
        if viewer_id is not None and viewer_id != author_id:
            verdict = (await self._visibility.of(viewer_id, [author_id])).get(author_id)
            if verdict == NOT_FOLLOWER_OF_PRIVATE:
                raise PermissionDenied(
                    "this account is private: follow it, and once approved you will see its posts",
                    reason="ACCOUNT_PRIVATE",
                )
            if verdict != VISIBLE:
                raise NotFound(f"user {author_id} does not exist", reason="USER_NOT_FOUND")
        limit = page_size(size)
        scope = f"posts:{author_id}"
        cursor = decode_cursor(token, PostCursor, scope)
        async with self._db.read_only() as session:
            found = await repo.list_by_author(session, author_id, cursor.before if cursor else None, limit + 1)
        return page_of(found, limit, scope, lambda post: PostCursor(before=post.id))

    async def update_caption(self, caller_id: int, post_id: int, caption: str, mask: list[str]) -> PostRecord:
        """Changes the caption (the only mutable field) and moves the post between tags as its hashtags
        changed, in one unit of work. See `_refuse_unless_author` for who is refused, and how."""
        if mask and mask != ["caption"]:
            others = ", ".join(p for p in mask if p != "caption")
            raise invalid_field("update_mask", f"only 'caption' can be updated, not {others}")
        caption = check_caption(caption)
        await self._refuse_unless_author(caller_id, post_id, "edit")
        async with self._db.unit_of_work() as session:
            post = await _owned(session, caller_id, post_id, "edit")
            if post.deleted:
                raise NotFound(f"post {post_id} does not exist", reason="POST_NOT_FOUND")
            hashtags = hashtags_of(caption)
            await repo.set_caption(session, post.id, caption, hashtags)
            updated = await repo.get_post(session, post.id)
            assert updated is not None
            # Readers cache posts (feed_svc hydration): the event lets them drop the old caption.
            event = events_pb2.PostUpdated(post_id=post.id, author_id=post.author_id)
            event.update_time.FromDatetime(updated.updated_at)
            await self._outbox.add(session, event)
            await tag_repo.retag_post(session, post.id, post.hashtags, hashtags)  # last: see retag_post
        return updated

    async def delete(self, caller_id: int, post_id: int) -> None:
        """Soft-deletes the post (taking it out of its tags) and emits `posts.deleted`. Deleting it again
        is a no-op. See `_refuse_unless_author` for who is refused, and how."""
        await self._refuse_unless_author(caller_id, post_id, "delete")
        async with self._db.unit_of_work() as session:
            post = await _owned(session, caller_id, post_id, "delete")
            if post.deleted:
                return
            await repo.mark_deleted(session, post_id)
            await self._outbox.add(session, events_pb2.PostDeleted(post_id=post_id, author_id=caller_id))
            await tag_repo.retag_post(session, post_id, post.hashtags, [])  # last: see retag_post

    async def _refuse_unless_author(self, caller_id: int, post_id: int, action: str) -> None:
        """Before a change: NOT_FOUND (POST_NOT_FOUND) for a post that does not exist, or that the
        caller did not write and may not see (deleted, a private account they do not follow, a block
        either way: as if it did not exist, so a refusal never confirms the post); PERMISSION_DENIED
        (NOT_AUTHOR) for a post the caller sees but did not write. Read without a lock (graph_svc is
        asked outside the change's transaction); the author never changes, and `_owned` checks again."""
        async with self._db.read_only() as session:
            post = await repo.get_post(session, post_id)
        if post is None:
            raise NotFound(f"post {post_id} does not exist", reason="POST_NOT_FOUND")
        if post.author_id != caller_id:
            await self.get(post_id, caller_id)
            raise PermissionDenied(f"only the author can {action} a post", reason="NOT_AUTHOR")


async def _owned(session: Session, caller_id: int, post_id: int, action: str) -> PostRecord:
    """The post locked for change; NOT_FOUND if missing, PERMISSION_DENIED unless the caller wrote it."""
    post = await repo.get_post(session, post_id, for_update=True)
    if post is None:
        raise NotFound(f"post {post_id} does not exist", reason="POST_NOT_FOUND")
    if post.author_id != caller_id:
        raise PermissionDenied(f"only the author can {action} a post", reason="NOT_AUTHOR")
    return post


# What media_svc answers when it refused the attach as a whole (one transaction: nothing attached).
# Any other outcome (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, INTERNAL...) may have attached.
_REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)


def _attach_refused(exc: BaseException) -> bool:
    """Whether `exc` is media_svc refusing the attach, so that there is nothing to hand back."""
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _REFUSALS


def _check_media_ids(media_ids: list[int]) -> None:
    if not MEDIA_MIN <= len(media_ids) <= MEDIA_MAX:
        raise invalid_field("media_ids", f"a post has {MEDIA_MIN} to {MEDIA_MAX} photos (got {len(media_ids)})")
    if len(set(media_ids)) != len(media_ids):
        raise invalid_field("media_ids", "lists a photo more than once")
    if any(m <= 0 for m in media_ids):
        raise InvalidArgument("media_ids: must be media ids", fields={"media_ids": "must be positive ids"})


def _fingerprint(caption: str, media_ids: list[int], location: Location | None) -> bytes:
    parts = [caption, ",".join(map(str, media_ids)), repr(location)]
    return hashlib.sha256("\x00".join(parts).encode()).digest()
