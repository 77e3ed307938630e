"""The rules of comments: what a comment's text may be, replies nested one level, idempotent creation,
deletion by the comment's or the post's author, and the comment count."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re

from engagement_svc import repository as repo
from engagement_svc.mentions import MentionResolver, mention_events
from engagement_svc.posts import PostDirectory, post_not_found
from engagement_svc.repository import CommentRecord
from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.errors import FailedPrecondition, NotFound, PermissionDenied, invalid_field
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
from usertext import parse_mentions

TEXT_MAX = 2200
REQUEST_ID_MAX = 128
# CommentCreated carries the start of the text, for notifications.
PREVIEW_LENGTH = 100
# Unicode category Cc except line feed and carriage return (line breaks, normalised to "\n"), and
# lone surrogates (Cs), which are not text.
_REFUSED = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class CommentCursor(PageCursor):
    """A comment or reply page continues after this comment (oldest first: a later time, or the same
    time and a higher id)."""

    after_us: TimestampUs
    after_id: Id


def check_text(raw: str) -> str:
    """The text as stored: line breaks as "\\n", trimmed. INVALID_ARGUMENT (field `text`) if it holds a
    control character other than a line break (NUL and tab included) or a lone surrogate, or is empty
    or longer than TEXT_MAX characters after trimming."""
    refused = _REFUSED.search(raw)
    if refused is not None:
        code = ord(refused.group())
        what = "a lone surrogate (not valid Unicode)" if 0xD800 <= code <= 0xDFFF else "a control character"
        raise invalid_field(
            "text", f"must not contain {what}: U+{code:04X} at offset {refused.start()} (only line breaks are allowed)"
        )
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise invalid_field("text", "must not be empty (spaces and line breaks alone do not count)")
    if len(text) > TEXT_MAX:
        raise invalid_field("text", f"must be at most {TEXT_MAX} characters after trimming (got {len(text)})")
    return text


def comment_not_found(comment_id: int) -> NotFound:
    return NotFound(f"comment {comment_id} does not exist or was deleted", reason="COMMENT_NOT_FOUND")


class CommentService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        ids: IdGenerator,
        posts: PostDirectory,
        mentions: MentionResolver,
        *,
        counter_shards: int,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._ids = ids
        self._posts = posts
        self._mentions = mentions
        self._shards = counter_shards

    async def create(
        self, author_id: int, post_id: int, raw_text: str, reply_to_comment_id: int, request_id: str
    ) -> CommentRecord:
        """A comment on the post, or a reply when `reply_to_comment_id` is set (to a top-level comment
        or to a reply: either way it joins the top-level comment's replies). The comment, the count,
        `engagement.commented` and one `engagement.mentioned` per existing @username (not the author)
        commit together.

        Idempotent per (author, request_id): a retry returns the first call's comment and emits
        nothing. INVALID_ARGUMENT for bad text (see check_text), request_id or ids; NOT_FOUND
        (POST_NOT_FOUND) for an unknown or deleted post, (COMMENT_NOT_FOUND) for a reply to a comment
        that is not a live comment of this post; FAILED_PRECONDITION (IDEMPOTENCY_KEY_REUSED) for a
        request_id used before for another comment. graph_svc's failures while resolving mentions
        (UNAVAILABLE) pass through: nothing is written, and a retry with the same key is safe.
        """
        text = check_text(raw_text)
        if len(request_id) > REQUEST_ID_MAX:
            raise invalid_field("request_id", f"must be at most {REQUEST_ID_MAX} characters")
        if reply_to_comment_id < 0:
            raise invalid_field("parent_comment_id", "must be a comment id, or 0 for a top-level comment")
        post_author_id = await self._posts.author_of(post_id, author_id)
        fingerprint = hashlib.sha256(f"{post_id}\x00{reply_to_comment_id}\x00{text}".encode()).digest()
        if request_id:
            replayed = await self._replay(author_id, request_id, fingerprint)
            if replayed is not None:
                return replayed
        mentioned = await self._mentions.user_ids(parse_mentions(text), actor_id=author_id)
        comment_id = self._ids.next_id()
        async with self._db.unit_of_work() as session:
            await repo.hold_post(session, post_id)
            if request_id:
                reserved, stored = await repo.reserve_comment_id(
                    session, author_id, request_id, comment_id, post_id, fingerprint
                )
                _check_fingerprint(stored, fingerprint)
                if reserved != comment_id:  # a concurrent call with the same key got there first
                    existing = await repo.get_comment(session, reserved)
                    if existing is None:
                        raise post_not_found(post_id)  # purged with its post since
                    return existing
            parent_id = parent_author_id = reply_to_author_id = 0
            if reply_to_comment_id:
                target = await repo.get_comment(session, reply_to_comment_id)
                if target is None or not target.live or target.post_id != post_id:
                    raise comment_not_found(reply_to_comment_id)
                parent_id = target.parent_id or target.id
                parent_author_id = await repo.add_reply_to(session, post_id, parent_id)
                if not parent_author_id:  # the thread was deleted meanwhile
                    raise comment_not_found(reply_to_comment_id)
                reply_to_author_id = target.author_id
            record = CommentRecord(
                id=comment_id,
                post_id=post_id,
                author_id=author_id,
                parent_id=parent_id or None,
                reply_to_id=reply_to_comment_id or None,
                text=text,
                reply_count=0,
                live=True,
                created_at=dt.datetime.now(dt.UTC),
            )
            await repo.insert_comment(session, record)
            counts = await repo.bump_counters(session, post_id, random.randrange(self._shards), comments=1)
            if counts.post_deleted:
                raise post_not_found(post_id)  # rolls everything back
            created = events_pb2.CommentCreated(
                comment_id=comment_id,
                post_id=post_id,
                post_author_id=post_author_id,
                author_id=author_id,
                parent_comment_id=parent_id,
                parent_author_id=parent_author_id,
                reply_to_comment_id=reply_to_comment_id,
                reply_to_author_id=reply_to_author_id,
                text_preview=text[:PREVIEW_LENGTH],
            )
            await self._outbox.add(session, created)
            for event in mention_events(mentioned, actor_id=author_id, post_id=post_id, comment_id=comment_id):
                await self._outbox.add(session, event)
        return record

    async def _replay(self, author_id: int, request_id: str, fingerprint: bytes) -> CommentRecord | None:
        """The comment an earlier call with this key created, if any (checking the key's fingerprint)."""
        async with self._db.read_only() as session:
            reserved = await repo.comment_request(session, author_id, request_id)
            if reserved is None:
                return None
            comment_id, stored = reserved
            _check_fingerprint(stored, fingerprint)
            return await repo.get_comment(session, comment_id)

    async def get(self, comment_id: int, viewer_id: int | None) -> CommentRecord:
        """One live comment or reply. NOT_FOUND (COMMENT_NOT_FOUND) if it never existed or was deleted,
        its author and `viewer_id` block one another, its post was deleted (and is being purged), or
        the viewer may not see its post."""
        async with self._db.read_only() as session:
            comment = await repo.get_comment(session, comment_id)
        if comment is None or not comment.live or comment.author_id in await self._posts.blocked_for(viewer_id):
            raise comment_not_found(comment_id)
        await self._post_author(comment, viewer_id)
        return comment

    async def comments(self, post_id: int, viewer_id: int | None, size: int, token: str) -> Page[CommentRecord]:
        """The post's live top-level comments, oldest first, each with its reply_count, leaving out
        those by users blocked either way with `viewer_id`. NOT_FOUND (POST_NOT_FOUND) for an unknown
        or deleted post or one the viewer may not see; INVALID_ARGUMENT for a bad page size or token."""
        await self._posts.author_of(post_id, viewer_id)
        scope = f"comments:{post_id}"
        read: repo.CommentReader = lambda s, after, n: repo.list_top_level(s, post_id, after, n)  # noqa: E731
        return await self._page(scope, viewer_id, size, token, read)

    async def replies(self, comment_id: int, viewer_id: int | None, size: int, token: str) -> Page[CommentRecord]:
        """The live replies of a top-level comment, oldest first. NOT_FOUND (COMMENT_NOT_FOUND) for an
        unknown or deleted comment, or one on a post the viewer may not see; INVALID_ARGUMENT (parent)
        for a reply, whose replies are its parent's; INVALID_ARGUMENT for a bad page size or token."""
        async with self._db.read_only() as session:
            comment = await repo.get_comment(session, comment_id)
        if comment is None or not comment.live:
            raise comment_not_found(comment_id)
        if comment.parent_id is not None:
            raise invalid_field(
                "parent",
                f"comments/{comment_id} is a reply; replies nest one level, "
                f"so list the replies of comments/{comment.parent_id}",
            )
        await self._post_author(comment, viewer_id)
        scope = f"replies:{comment_id}"
        read: repo.CommentReader = lambda s, after, n: repo.list_replies(s, comment_id, after, n)  # noqa: E731
        return await self._page(scope, viewer_id, size, token, read)

    async def _post_author(self, comment: CommentRecord, viewer_id: int | None) -> int:
        """The author of the comment's post; NOT_FOUND (COMMENT_NOT_FOUND, naming the comment asked
        about) unless `viewer_id` may see that post (or it is gone): to them the comment does not exist,
        and the answer does not say which post it was on. post_svc's and graph_svc's failures pass
        through."""
        try:
            return await self._posts.author_of(comment.post_id, viewer_id)
        except NotFound:
            raise comment_not_found(comment.id) from None

    async def _page(
        self, scope: str, viewer_id: int | None, size: int, token: str, read: repo.CommentReader
    ) -> Page[CommentRecord]:
        """A page of comments, leaving out those by users blocked either way with the viewer (so a
        page may hold fewer than `size`; the token still moves past them)."""
        limit = page_size(size)
        cursor = decode_cursor(token, CommentCursor, scope)
        after = (from_timestamp_us(cursor.after_us), cursor.after_id) if cursor else None
        async with self._db.read_only() as session:
            found = await read(session, after, limit + 1)
        page = page_of(found, limit, scope, lambda c: CommentCursor(after_us=timestamp_us(c.created_at), after_id=c.id))
        blocked = await self._posts.blocked_for(viewer_id)
        return Page([c for c in page.items if c.author_id not in blocked], page.next_page_token)

    async def delete(self, caller_id: int, comment_id: int) -> bool:
        """Deletes the comment, and with a top-level comment its replies; the count and
        `engagement.comment_deleted` commit with it. True if this call deleted it, False if it was
        deleted already. NOT_FOUND (COMMENT_NOT_FOUND) for a comment that never existed, went with its
        post (or its deleted post is being purged), or is on a post the caller may not see; PERMISSION_DENIED
        (NOT_COMMENT_OR_POST_AUTHOR) unless the caller wrote the comment or the post."""
        async with self._db.read_only() as session:
            comment = await repo.get_comment(session, comment_id)
        if comment is None:
            raise comment_not_found(comment_id)
        post_author_id = await self._post_author(comment, caller_id)
        if caller_id not in (comment.author_id, post_author_id):
            raise PermissionDenied(
                "only the comment's author or the post's author can delete a comment",
                reason="NOT_COMMENT_OR_POST_AUTHOR",
            )
        async with self._db.unit_of_work() as session:
            await repo.hold_post(session, comment.post_id)
            # Lock order: the top-level comment's row before its replies' (repository docstring).
            if comment.parent_id is not None:
                await repo.get_comment(session, comment.parent_id, for_update=True)
            locked = await repo.get_comment(session, comment_id, for_update=True)
            if locked is None or not locked.live:
                return False
            if comment.parent_id is None:
                reply_ids = await repo.delete_thread(session, comment_id)
            else:
                await repo.delete_reply(session, comment_id, comment.parent_id)
                reply_ids = []
            removed = 1 + len(reply_ids)
            await repo.bump_counters(session, comment.post_id, random.randrange(self._shards), comments=-removed)
            event = events_pb2.CommentDeleted(
                comment_id=comment_id, post_id=comment.post_id, author_id=comment.author_id, reply_ids=reply_ids
            )
            await self._outbox.add(session, event)
        return True

    async def by_author(self, author_id: int, size: int, token: str) -> Page[CommentRecord]:
        """The author's live comments and replies, oldest first (the user's own: their data export).
        INVALID_ARGUMENT for a bad page size or token."""
        limit = page_size(size)
        scope = f"comments_by:{author_id}"
        cursor = decode_cursor(token, AuthorCommentCursor, scope)
        async with self._db.read_only() as session:
            found = await repo.list_comments_by_author(session, author_id, cursor.after_id if cursor else 0, limit + 1)
        return page_of(found, limit, scope, lambda comment: AuthorCommentCursor(after_id=comment.id))


class AuthorCommentCursor(PageCursor):
    """A page of a user's comments continues after this comment id (oldest first)."""

    after_id: Id


def _check_fingerprint(stored: bytes, fingerprint: bytes) -> None:
    if stored != fingerprint:
        raise FailedPrecondition(
            "this idempotency key was already used for a different comment; use a new key for a new comment",
            reason="IDEMPOTENCY_KEY_REUSED",
        )
