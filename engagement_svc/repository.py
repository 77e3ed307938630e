"""SQL of the engagement schema. Every function runs inside the caller's unit of work.

Locking, in the one order every writer follows (so no two transactions wait for each other in a
circle): the post's advisory lock (`hold_post`), then a top-level comment's row, then its replies'
rows, then one `post_counters` shard. Writers of a post's rows share its advisory lock, so they never
wait for each other on it; a purge or a reconcile takes it exclusively, and so waits for the writes
in flight and holds back new ones until it commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Select,
    Table,
    any_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from engagement_svc.models import (
    DELETED,
    LIVE,
    caption_mentions,
    comment_requests,
    comments,
    deleted_posts,
    likes,
    outbox,
    post_counters,
    saves,
)
from mesh.db import Session, Statement
from mesh.outbox import insert_rows_sql

# First key of this schema's per-post advisory locks (the two-key form never meets the one-key
# locks mesh.migrate takes). The second key is the post id folded to 31 bits: two posts that share
# it only share a lock, which costs a wait, never a wrong count.
_LOCK_CLASS = 0x656E67
_SHARED_LOCK = "pg_advisory_xact_lock_shared(:lock_class, :lock_key)"

# What a unit of work changed that the engagement cache holds (engagement_cache), in `session.info`:
# the posts whose counts moved and the users whose likes or saves did. Recorded here, where the rows
# and counters are written, so no writer can forget it; the app drops them after the commit
# (EngagementCacheDrops).
CHANGED_POSTS = "engagement.changed_posts"
CHANGED_VIEWERS = "engagement.changed_viewers"


def _changed(session: Session, posts: Iterable[int] = (), viewers: Iterable[int] = ()) -> None:
    session.info.setdefault(CHANGED_POSTS, set()).update(posts)
    session.info.setdefault(CHANGED_VIEWERS, set()).update(viewers)


def _lock_params(post_id: int) -> dict[str, int]:
    return {"lock_class": _LOCK_CLASS, "lock_key": (post_id ^ (post_id >> 31)) & 0x7FFFFFFF}


@dataclass(frozen=True)
class LikeRecord:
    user_id: int
    created_at: dt.datetime


@dataclass(frozen=True)
class CommentRecord:
    id: int
    post_id: int
    author_id: int
    parent_id: int | None
    reply_to_id: int | None
    text: str
    reply_count: int
    live: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class SaveRecord:
    post_id: int
    created_at: dt.datetime


@dataclass(frozen=True)
class Counts:
    likes: int
    comments: int
    saves: int
    # The post's `posts.deleted` was handled: every change to it must roll back.
    post_deleted: bool


@dataclass(frozen=True)
class PostEngagement:
    post_id: int
    like_count: int
    comment_count: int
    save_count: int
    viewer_has_liked: bool
    viewer_has_saved: bool


@dataclass(frozen=True)
class Purged:
    likes: int
    comments: int
    saves: int


# The statements of likes and of every write's lock, compiled once (mesh.db.Statement): a like is the
# most frequent write there is.
_HOLD_SHARED = Statement(text(f"SELECT {_SHARED_LOCK}"))
_HOLD_EXCLUSIVE = Statement(text("SELECT pg_advisory_xact_lock(:lock_class, :lock_key)"))
_IS_DELETED = Statement(select(deleted_posts.c.post_id).where(deleted_posts.c.post_id == bindparam("post_id")))


async def hold_post(session: Session, post_id: int, *, exclusive: bool = False) -> None:
    """Takes the post's advisory lock until the transaction ends: shared by every writer of its likes,
    comments and saves, exclusive for a purge or a reconcile."""
    await session.execute(_HOLD_EXCLUSIVE if exclusive else _HOLD_SHARED, _lock_params(post_id))


async def is_deleted(session: Session, post_id: int) -> bool:
    """Whether the post's `posts.deleted` was handled here."""
    found = await session.execute(_IS_DELETED, {"post_id": post_id})
    return found.first() is not None


_DELETE_LIKE = Statement(
    delete(likes)
    .where(likes.c.post_id == bindparam("post_id"), likes.c.user_id == bindparam("user_id"))
    .returning(likes.c.post_id)
)


async def delete_like(session: Session, post_id: int, user_id: int) -> bool:
    """Removes the like (hold the post first); False if there was none."""
    result = await session.execute(_DELETE_LIKE, {"post_id": post_id, "user_id": user_id})
    if result.first() is None:
        return False
    _changed(session, viewers=[user_id])
    return True


# A batch of likes (LikeService's group commit) in two statements. The first takes the posts' shared
# locks (in key order, before any row is written: so two holders never wait in a circle) and adds the
# rows in (post, user) order. The second, whose snapshot is taken after the locks were granted and
# so sees any purge that committed before, adds the new likes to one counter shard of each post
# (rows taken in post order), writes their events (mesh.outbox.insert_rows_sql), and reads every
# post's like count after it (as of this statement) and whether it was deleted.
_INSERT_LIKES = Statement(
    text(
        f"""
    INSERT INTO {likes.fullname} (post_id, user_id)
    SELECT p.post_id, p.user_id
      FROM (SELECT count(pg_advisory_xact_lock_shared(:lock_class, k))
              FROM (SELECT k FROM unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS ordered) AS held,
           unnest(CAST(:post_ids AS bigint[]), CAST(:user_ids AS bigint[])) AS p(post_id, user_id)
     ORDER BY p.post_id, p.user_id
    ON CONFLICT DO NOTHING RETURNING post_id, user_id
    """
    )
)
_BUMP_LIKES = Statement(
    text(
        f"""
    WITH bump AS (
        INSERT INTO {post_counters.fullname} AS c (post_id, shard, likes, comments, saves)
        SELECT d.post_id, :shard, d.added, 0, 0
          FROM unnest(CAST(:bumped AS bigint[]), CAST(:added AS bigint[])) AS d(post_id, added)
         ORDER BY d.post_id
        ON CONFLICT (post_id, shard) DO UPDATE SET likes = c.likes + EXCLUDED.likes
        RETURNING c.post_id, c.likes
    ), events AS (
        {insert_rows_sql(outbox)}
    )
    SELECT p.post_id,
           (COALESCE((SELECT sum(o.likes) FROM {post_counters.fullname} AS o
                       WHERE o.post_id = p.post_id AND o.shard <> :shard), 0)
            + COALESCE((SELECT b.likes FROM bump AS b WHERE b.post_id = p.post_id),
                       (SELECT s.likes FROM {post_counters.fullname} AS s
                         WHERE s.post_id = p.post_id AND s.shard = :shard), 0))::bigint AS likes,
           EXISTS (SELECT 1 FROM {deleted_posts.fullname} AS d WHERE d.post_id = p.post_id) AS post_deleted
      FROM unnest(CAST(:post_ids AS bigint[])) AS p(post_id)
    """
    )
)


async def insert_likes(session: Session, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """Holds the posts (shared) and adds the likes `pairs` (post id, user id; distinct), in one
    statement; the pairs added (not liked before). Whether a post was deleted is for `bump_likes`
    to tell, in the same unit of work."""
    ordered = sorted(pairs)
    keys = sorted({_lock_params(post)["lock_key"] for post, _ in ordered})
    params = {
        "lock_class": _LOCK_CLASS,
        "keys": keys,
        "post_ids": [post for post, _ in ordered],
        "user_ids": [user for _, user in ordered],
    }
    added = {(row.post_id, row.user_id) for row in await session.execute(_INSERT_LIKES, params)}
    _changed(session, viewers=[user for _, user in added])
    return added


@dataclass(frozen=True)
class LikeCount:
    likes: int
    # The post's `posts.deleted` was handled (it has no likes left).
    post_deleted: bool


async def bump_likes(
    session: Session, shard: int, added: dict[int, int], post_ids: Iterable[int], events: Mapping[str, Any]
) -> dict[int, LikeCount]:
    """After `insert_likes`: adds `added` (post id -> new likes) to one shard of each post's counters
    and writes the outbox rows `events` (mesh.outbox.Outbox.stage), in one statement; the like count
    after it (as of this statement) and whether the post was deleted, of every post in `post_ids`. A
    deleted post's likes and events must not commit: the caller rolls the unit of work back."""
    bumped = sorted(added)
    params = {
        "shard": shard,
        "bumped": bumped,
        "added": [added[p] for p in bumped],
        "post_ids": sorted(post_ids),
        **events,
    }
    found = {row.post_id: LikeCount(row.likes, row.post_deleted) for row in await session.execute(_BUMP_LIKES, params)}
    _changed(session, posts=bumped)
    return found


_BUMP = Statement(
    text(
        f"""
    WITH bump AS (
        INSERT INTO {post_counters.fullname} AS c (post_id, shard, likes, comments, saves)
        VALUES (:post_id, :shard, :likes, :comments, :saves)
        ON CONFLICT (post_id, shard)
        DO UPDATE SET likes = c.likes + EXCLUDED.likes, comments = c.comments + EXCLUDED.comments,
                      saves = c.saves + EXCLUDED.saves
        RETURNING c.likes, c.comments, c.saves
    ), others AS (
        SELECT COALESCE(sum(likes), 0) AS likes, COALESCE(sum(comments), 0) AS comments,
               COALESCE(sum(saves), 0) AS saves
        FROM {post_counters.fullname} WHERE post_id = :post_id AND shard <> :shard
    )
    SELECT (bump.likes + others.likes)::bigint AS likes, (bump.comments + others.comments)::bigint AS comments,
           (bump.saves + others.saves)::bigint AS saves,
           EXISTS (SELECT 1 FROM {deleted_posts.fullname} WHERE post_id = :post_id) AS post_deleted
    FROM bump, others
    """
    )
)

_COUNTS = Statement(
    text(
        f"""
    SELECT COALESCE(sum(likes), 0)::bigint AS likes, COALESCE(sum(comments), 0)::bigint AS comments,
           COALESCE(sum(saves), 0)::bigint AS saves,
           EXISTS (SELECT 1 FROM {deleted_posts.fullname} WHERE post_id = :post_id) AS post_deleted
    FROM {post_counters.fullname} WHERE post_id = :post_id
    """
    )
)


async def bump_counters(
    session: Session, post_id: int, shard: int, *, likes: int = 0, comments: int = 0, saves: int = 0
) -> Counts:
    """Adds the deltas to one shard of the post's counters; the post's counts after the change (as of
    this statement) and whether the post was deleted, in the same round trip."""
    params = {"post_id": post_id, "shard": shard, "likes": likes, "comments": comments, "saves": saves}
    row = (await session.execute(_BUMP, params)).one()
    _changed(session, posts=[post_id])
    return Counts(row.likes, row.comments, row.saves, row.post_deleted)


async def counts(session: Session, post_id: int) -> Counts:
    """The post's counts and whether it was deleted."""
    row = (await session.execute(_COUNTS, {"post_id": post_id})).one()
    return Counts(row.likes, row.comments, row.saves, row.post_deleted)


async def list_likes(
    session: Session, post_id: int, before: tuple[dt.datetime, int] | None, limit: int
) -> list[LikeRecord]:
    """The post's likes, newest first (ties: higher user id first), strictly after the `before` position."""
    query = select(likes.c.user_id, likes.c.created_at).where(likes.c.post_id == post_id)
    if before is not None:
        query = query.where(
            tuple_(likes.c.created_at, likes.c.user_id) < tuple_(literal(before[0]), literal(before[1]))
        )
    rows = await session.execute(query.order_by(likes.c.created_at.desc(), likes.c.user_id.desc()).limit(limit))
    return [LikeRecord(row.user_id, row.created_at) for row in rows]


# Reads one page of comments: (session, position to continue after, limit).
CommentReader = Callable[[Session, tuple[dt.datetime, int] | None, int], Awaitable[list["CommentRecord"]]]

_COMMENT_COLUMNS = [
    comments.c.id,
    comments.c.post_id,
    comments.c.author_id,
    comments.c.parent_id,
    comments.c.reply_to_id,
    comments.c.text,
    comments.c.reply_count,
    comments.c.state,
    comments.c.created_at,
]


def _comment(row: object) -> CommentRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return CommentRecord(
        id=m["id"],
        post_id=m["post_id"],
        author_id=m["author_id"],
        parent_id=m["parent_id"],
        reply_to_id=m["reply_to_id"],
        text=m["text"],
        reply_count=m["reply_count"],
        live=m["state"] == LIVE,
        created_at=m["created_at"],
    )


async def get_comment(session: Session, comment_id: int, *, for_update: bool = False) -> CommentRecord | None:
    query = select(*_COMMENT_COLUMNS).where(comments.c.id == comment_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    return _comment(row) if row else None


async def reserve_comment_id(
    session: Session, author_id: int, request_id: str, comment_id: int, post_id: int, fingerprint: bytes
) -> tuple[int, bytes]:
    """The (comment id, fingerprint) reserved for (author, request id): `comment_id` if this call
    reserved it. A concurrent reservation of the same key waits for the other transaction to end."""
    await session.execute(
        insert(comment_requests)
        .values(
            author_id=author_id, request_id=request_id, comment_id=comment_id, post_id=post_id, fingerprint=fingerprint
        )
        .on_conflict_do_nothing()
    )
    reserved = await comment_request(session, author_id, request_id)
    assert reserved is not None  # inserted above, or by a transaction that has committed
    return reserved


async def comment_request(session: Session, author_id: int, request_id: str) -> tuple[int, bytes] | None:
    """The (comment id, fingerprint) reserved for (author, request id), if any."""
    row = (
        await session.execute(
            select(comment_requests.c.comment_id, comment_requests.c.fingerprint).where(
                comment_requests.c.author_id == author_id, comment_requests.c.request_id == request_id
            )
        )
    ).one_or_none()
    return (row.comment_id, bytes(row.fingerprint)) if row else None


async def add_reply_to(session: Session, post_id: int, parent_id: int) -> int:
    """Counts one more reply on a live top-level comment of the post (locking its row) and returns its
    author; 0 if there is no such comment (deleted meanwhile, a reply, or of another post)."""
    result = await session.execute(
        update(comments)
        .where(
            comments.c.id == parent_id,
            comments.c.post_id == post_id,
            comments.c.parent_id.is_(None),
            comments.c.state == LIVE,
        )
        .values(reply_count=comments.c.reply_count + 1)
        .returning(comments.c.author_id)
    )
    return result.scalar() or 0


async def insert_comment(session: Session, record: CommentRecord) -> None:
    await session.execute(
        insert(comments).values(
            id=record.id,
            post_id=record.post_id,
            author_id=record.author_id,
            parent_id=record.parent_id,
            reply_to_id=record.reply_to_id,
            text=record.text,
            created_at=record.created_at,
        )
    )


async def delete_thread(session: Session, comment_id: int) -> list[int]:
    """Marks a top-level comment (row locked by the caller) and its live replies deleted; the ids of
    the replies deleted with it."""
    result = await session.execute(
        update(comments)
        .where((comments.c.id == comment_id) | (comments.c.parent_id == comment_id), comments.c.state == LIVE)
        .values(state=DELETED, deleted_at=func.now())
        .returning(comments.c.id)
    )
    return sorted(row.id for row in result if row.id != comment_id)


async def delete_reply(session: Session, reply_id: int, parent_id: int) -> None:
    """Marks a live reply deleted and counts one reply less on its parent (both rows locked by the caller)."""
    await session.execute(
        update(comments).where(comments.c.id == reply_id).values(state=DELETED, deleted_at=func.now())
    )
    await session.execute(
        update(comments).where(comments.c.id == parent_id).values(reply_count=comments.c.reply_count - 1)
    )


async def list_top_level(
    session: Session, post_id: int, after: tuple[dt.datetime, int] | None, limit: int
) -> list[CommentRecord]:
    """The post's live top-level comments, oldest first (ties: lower id first), after `after`."""
    query = select(*_COMMENT_COLUMNS).where(
        comments.c.post_id == post_id, comments.c.parent_id.is_(None), comments.c.state == LIVE
    )
    return await _comment_page(session, query, after, limit)


async def list_replies(
    session: Session, parent_id: int, after: tuple[dt.datetime, int] | None, limit: int
) -> list[CommentRecord]:
    """A top-level comment's live replies, oldest first (ties: lower id first), after `after`."""
    query = select(*_COMMENT_COLUMNS).where(
        comments.c.parent_id == parent_id, comments.c.parent_id.is_not(None), comments.c.state == LIVE
    )
    return await _comment_page(session, query, after, limit)


async def _comment_page(
    session: Session, query: Select[Any], after: tuple[dt.datetime, int] | None, limit: int
) -> list[CommentRecord]:
    if after is not None:
        query = query.where(tuple_(comments.c.created_at, comments.c.id) > tuple_(literal(after[0]), literal(after[1])))
    query = query.order_by(comments.c.created_at, comments.c.id).limit(limit)
    return [_comment(row) for row in await session.execute(query)]


async def insert_save(session: Session, user_id: int, post_id: int) -> bool:
    """Saves the post (hold it first); False if it was saved already."""
    result = await session.execute(
        insert(saves).values(user_id=user_id, post_id=post_id).on_conflict_do_nothing().returning(saves.c.post_id)
    )
    if result.first() is None:
        return False
    _changed(session, viewers=[user_id])
    return True


async def delete_save(session: Session, user_id: int, post_id: int) -> bool:
    """Unsaves the post (hold it first); False if it was not saved."""
    result = await session.execute(
        delete(saves).where(saves.c.user_id == user_id, saves.c.post_id == post_id).returning(saves.c.post_id)
    )
    if result.first() is None:
        return False
    _changed(session, viewers=[user_id])
    return True


async def list_saves(
    session: Session, user_id: int, before: tuple[dt.datetime, int] | None, limit: int
) -> list[SaveRecord]:
    """The user's saves, most recent first (ties: higher post id first), strictly after `before`."""
    query = select(saves.c.post_id, saves.c.created_at).where(saves.c.user_id == user_id)
    if before is not None:
        query = query.where(
            tuple_(saves.c.created_at, saves.c.post_id) < tuple_(literal(before[0]), literal(before[1]))
        )
    rows = await session.execute(query.order_by(saves.c.created_at.desc(), saves.c.post_id.desc()).limit(limit))
    return [SaveRecord(row.post_id, row.created_at) for row in rows]


# BatchGetEngagement's query (every feed page runs it), compiled once: each post's counts, and with
# a viewer, the posts among them the viewer liked and saved.
_POST_IDS = bindparam("ids", type_=ARRAY(BigInteger))
_COUNTS_OF_POSTS = (
    select(
        post_counters.c.post_id,
        literal("c").label("kind"),
        func.sum(post_counters.c.likes).label("likes"),
        func.sum(post_counters.c.comments).label("comments"),
        func.sum(post_counters.c.saves).label("saves"),
    )
    .where(post_counters.c.post_id == any_(_POST_IDS))
    .group_by(post_counters.c.post_id)
)
_ENGAGEMENT = Statement(_COUNTS_OF_POSTS)
_ENGAGEMENT_OF_VIEWER = Statement(
    union_all(
        _COUNTS_OF_POSTS,
        select(likes.c.post_id, literal("l"), literal(0), literal(0), literal(0)).where(
            likes.c.user_id == bindparam("viewer_id"), likes.c.post_id == any_(_POST_IDS)
        ),
        select(saves.c.post_id, literal("s"), literal(0), literal(0), literal(0)).where(
            saves.c.user_id == bindparam("viewer_id"), saves.c.post_id == any_(_POST_IDS)
        ),
    )
)


async def engagement(session: Session, post_ids: Sequence[int], viewer_id: int) -> dict[int, PostEngagement]:
    """Counts and the viewer's like and save of each post that has any (one round trip); posts with
    nothing are left out. `viewer_id` 0: nobody's likes or saves."""
    ids = list(set(post_ids))
    if viewer_id:
        rows = await session.execute(_ENGAGEMENT_OF_VIEWER, {"ids": ids, "viewer_id": viewer_id})
    else:
        rows = await session.execute(_ENGAGEMENT, {"ids": ids})
    found: dict[int, dict[str, int]] = {}
    for row in rows:
        entry = found.setdefault(row.post_id, {"likes": 0, "comments": 0, "saves": 0, "l": 0, "s": 0})
        if row.kind == "c":
            entry["likes"], entry["comments"], entry["saves"] = int(row.likes), int(row.comments), int(row.saves)
        else:
            entry[row.kind] = 1
    return {
        post_id: PostEngagement(post_id, e["likes"], e["comments"], e["saves"], bool(e["l"]), bool(e["s"]))
        for post_id, e in found.items()
    }


async def recount(session: Session, post_id: int) -> tuple[Counts, Counts]:
    """Rebuilds the post's reply counts and counters (likes, comments, saves) from the rows (hold the
    post exclusively first); (counts before, counts after). A deleted post is left with none."""
    before = await counts(session, post_id)
    _changed(session, posts=[post_id])
    live_replies = (
        select(func.count())
        .select_from(replies := comments.alias("replies"))
        .where(replies.c.parent_id == comments.c.id, replies.c.state == LIVE)
        .scalar_subquery()
    )
    await session.execute(
        update(comments)
        .where(comments.c.post_id == post_id, comments.c.parent_id.is_(None), comments.c.state == LIVE)
        .values(reply_count=live_replies)
    )
    await session.execute(delete(post_counters).where(post_counters.c.post_id == post_id))
    if before.post_deleted:
        return before, Counts(0, 0, 0, True)
    like_total = select(func.count()).select_from(likes).where(likes.c.post_id == post_id).scalar_subquery()
    comment_total = (
        select(func.count())
        .select_from(comments)
        .where(comments.c.post_id == post_id, comments.c.state == LIVE)
        .scalar_subquery()
    )
    save_total = select(func.count()).select_from(saves).where(saves.c.post_id == post_id).scalar_subquery()
    row = (
        await session.execute(
            insert(post_counters)
            .values(post_id=post_id, shard=0, likes=like_total, comments=comment_total, saves=save_total)
            .returning(post_counters.c.likes, post_counters.c.comments, post_counters.c.saves)
        )
    ).one()
    return before, Counts(row.likes, row.comments, row.saves, False)


async def purge(session: Session, post_id: int) -> Purged:
    """Records the post as deleted and removes its likes, comments, comment keys, saves, counters and
    caption mentions (hold the post exclusively first). Repeating it removes nothing more."""
    await session.execute(insert(deleted_posts).values(post_id=post_id).on_conflict_do_nothing())
    # Readers who liked or saved it keep a flag for a post nobody can read any more: harmless.
    _changed(session, posts=[post_id])

    async def remove(table: Table) -> int:
        result = await session.execute(delete(table).where(table.c.post_id == post_id))
        return int(result.rowcount)

    removed_likes = await remove(likes)
    removed_comments = await remove(comments)
    await remove(comment_requests)
    removed_saves = await remove(saves)
    await remove(post_counters)
    await remove(caption_mentions)
    return Purged(removed_likes, removed_comments, removed_saves)


async def add_caption_mentions(session: Session, post_id: int, user_ids: Sequence[int]) -> list[int]:
    """Records the post's caption as mentioning the users; those not recorded before, in order."""
    if not user_ids:
        return []
    result = await session.execute(
        insert(caption_mentions)
        .values([{"post_id": post_id, "user_id": u} for u in user_ids])
        .on_conflict_do_nothing()
        .returning(caption_mentions.c.user_id)
    )
    added = {row.user_id for row in result}
    return [u for u in user_ids if u in added]


@dataclass(frozen=True)
class LikedPostRecord:
    post_id: int
    created_at: dt.datetime


async def list_likes_by_user(
    session: Session, user_id: int, before: tuple[dt.datetime, int] | None, limit: int
) -> list[LikedPostRecord]:
    """The posts the user liked and when, newest first (ties: higher post id first), strictly after
    `before` (the index likes_by_user)."""
    query = select(likes.c.post_id, likes.c.created_at).where(likes.c.user_id == user_id)
    if before is not None:
        query = query.where(
            tuple_(likes.c.created_at, likes.c.post_id) < tuple_(literal(before[0]), literal(before[1]))
        )
    rows = await session.execute(query.order_by(likes.c.created_at.desc(), likes.c.post_id.desc()).limit(limit))
    return [LikedPostRecord(row.post_id, row.created_at) for row in rows]


async def list_comments_by_author(session: Session, author_id: int, after_id: int, limit: int) -> list[CommentRecord]:
    """The author's live comments and replies with an id above `after_id`, oldest first (ids are
    time-ordered; the index comments_by_author)."""
    query = (
        select(*_COMMENT_COLUMNS)
        .where(comments.c.author_id == author_id, comments.c.state == LIVE, comments.c.id > after_id)
        .order_by(comments.c.id)
        .limit(limit)
    )
    return [_comment(row) for row in await session.execute(query)]


# Erasure (engagement_svc.erasure) ------------------------------------------------------------------


@dataclass(frozen=True)
class ErasedComments:
    """What one batch of a user's comments took with it: each post's live comments removed (replies
    included), and the deletions to announce (comment id, post id, live reply ids removed with it)."""

    removed_by_post: dict[int, int]
    announced: list[tuple[int, int, list[int]]]
    rows: int


_HOLD_POSTS_SHARED = Statement(
    text("SELECT pg_advisory_xact_lock_shared(:lock_class, k) FROM unnest(CAST(:keys AS integer[])) AS k ORDER BY k")
)


async def hold_posts(session: Session, post_ids: Sequence[int]) -> None:
    """`hold_post` (shared) for several posts, in lock-key order (so two holders never wait in a circle)."""
    keys = sorted({_lock_params(p)["lock_key"] for p in post_ids})
    if keys:
        await session.execute(_HOLD_POSTS_SHARED, {"lock_class": _LOCK_CLASS, "keys": keys})


_UNCOUNT = Statement(
    text(
        f"""
    INSERT INTO {post_counters.fullname} AS c (post_id, shard, likes, comments, saves)
    SELECT d.post_id, :shard, d.likes, d.comments, d.saves
      FROM unnest(CAST(:post_ids AS bigint[]), CAST(:likes AS bigint[]), CAST(:comments AS bigint[]),
                  CAST(:saves AS bigint[]))
           AS d(post_id, likes, comments, saves)
     ORDER BY d.post_id
    ON CONFLICT (post_id, shard)
    DO UPDATE SET likes = c.likes + EXCLUDED.likes, comments = c.comments + EXCLUDED.comments,
                  saves = c.saves + EXCLUDED.saves
    """
    )
)


async def bump_many(session: Session, shard: int, deltas: dict[int, tuple[int, int, int]]) -> None:
    """Adds (likes, comments, saves) deltas to one shard of each post's counters, in one statement
    (the posts held first; their rows taken in post order)."""
    if not deltas:
        return
    _changed(session, posts=deltas)
    ordered = sorted(deltas.items())
    await session.execute(
        _UNCOUNT,
        {
            "shard": shard,
            "post_ids": [post_id for post_id, _ in ordered],
            "likes": [likes_ for _, (likes_, _, _) in ordered],
            "comments": [comments_ for _, (_, comments_, _) in ordered],
            "saves": [saves_ for _, (_, _, saves_) in ordered],
        },
    )


_LIKED_BY = Statement(
    select(likes.c.post_id)
    .where(likes.c.user_id == bindparam("user_id"))
    .order_by(likes.c.post_id)
    .limit(bindparam("limit"))
)
_REMOVE_LIKES = Statement(
    delete(likes)
    .where(likes.c.user_id == bindparam("user_id"), likes.c.post_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .returning(likes.c.post_id)
)


async def liked_by(session: Session, user_id: int, limit: int) -> list[int]:
    """Up to `limit` posts the user liked (lowest ids first)."""
    return [row.post_id for row in await session.execute(_LIKED_BY, {"user_id": user_id, "limit": limit})]


_SAVED_BY = Statement(
    select(saves.c.post_id)
    .where(saves.c.user_id == bindparam("user_id"))
    .order_by(saves.c.post_id)
    .limit(bindparam("limit"))
)
_REMOVE_SAVES = Statement(
    delete(saves)
    .where(saves.c.user_id == bindparam("user_id"), saves.c.post_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .returning(saves.c.post_id)
)


async def saved_by(session: Session, user_id: int, limit: int) -> list[int]:
    """Up to `limit` posts the user saved (lowest ids first; the saves' primary key)."""
    return [row.post_id for row in await session.execute(_SAVED_BY, {"user_id": user_id, "limit": limit})]


async def remove_saves(session: Session, user_id: int, post_ids: Sequence[int]) -> list[int]:
    """Removes the user's saves of the posts (held first); the posts whose save was still there."""
    result = await session.execute(_REMOVE_SAVES, {"user_id": user_id, "ids": list(post_ids)})
    _changed(session, viewers=[user_id])
    return [row.post_id for row in result]


async def remove_likes(session: Session, user_id: int, post_ids: Sequence[int]) -> list[int]:
    """Removes the user's likes of the posts (held first); the posts whose like was still there."""
    result = await session.execute(_REMOVE_LIKES, {"user_id": user_id, "ids": list(post_ids)})
    _changed(session, viewers=[user_id])
    return [row.post_id for row in result]


_COMMENT_LOCK_COLUMNS = [
    comments.c.id,
    comments.c.post_id,
    comments.c.author_id,
    comments.c.parent_id,
    comments.c.state,
]


async def comments_by(session: Session, author_id: int, limit: int) -> list[tuple[int, int, int | None]]:
    """(id, post id, parent id) of up to `limit` comments the author wrote, live or deleted, oldest first."""
    rows = await session.execute(
        select(comments.c.id, comments.c.post_id, comments.c.parent_id)
        .where(comments.c.author_id == author_id)
        .order_by(comments.c.id)
        .limit(limit)
    )
    return [(row.id, row.post_id, row.parent_id) for row in rows]


async def comments_by_on(
    session: Session, author_id: int, post_ids: Sequence[int]
) -> list[tuple[int, int, int | None]]:
    """(id, post id, parent id) of every comment the author wrote on the posts, live or deleted, in id
    order (as `comments_by`, for `remove_comments_of`)."""
    rows = await session.execute(
        select(comments.c.id, comments.c.post_id, comments.c.parent_id)
        .where(comments.c.author_id == author_id, comments.c.post_id.in_(list(post_ids)))
        .order_by(comments.c.id)
    )
    return [(row.id, row.post_id, row.parent_id) for row in rows]


async def remove_comments_of(
    session: Session, author_id: int, found: Sequence[tuple[int, int, int | None]]
) -> ErasedComments:
    """Deletes for good the author's comments `found` (posts held first): a top-level one with every
    reply under it, a reply alone (one reply less on its top-level comment). Rows are locked in the
    module's order: top-level comments, then replies. What each post lost is for the caller to count."""
    mine = [comment_id for comment_id, _, _ in found]
    parents = sorted({parent for _, _, parent in found if parent is not None})
    # Top-level rows first (the author's own, and those the author's replies answer), then replies.
    top = await session.execute(
        select(*_COMMENT_LOCK_COLUMNS)
        .where(comments.c.id.in_(sorted(set(mine) | set(parents))), comments.c.parent_id.is_(None))
        .order_by(comments.c.id)
        .with_for_update()
    )
    top_rows = {row.id: row for row in top}
    threads = sorted(i for i, row in top_rows.items() if row.author_id == author_id)
    replies = await session.execute(
        select(*_COMMENT_LOCK_COLUMNS)
        .where(
            (comments.c.parent_id.in_(threads) if threads else literal(False))
            | (comments.c.id.in_(mine) & comments.c.parent_id.is_not(None))
        )
        .order_by(comments.c.id)
        .with_for_update()
    )
    reply_rows = {row.id: row for row in replies}
    removed_by_post: dict[int, int] = {}
    announced: list[tuple[int, int, list[int]]] = []

    def lose(post_id: int, n: int) -> None:
        if n:
            removed_by_post[post_id] = removed_by_post.get(post_id, 0) + n

    for thread_id in threads:
        thread = top_rows[thread_id]
        live_replies = sorted(r.id for r in reply_rows.values() if r.parent_id == thread_id and r.state == LIVE)
        if thread.state == LIVE:
            lose(thread.post_id, 1 + len(live_replies))
            announced.append((thread_id, thread.post_id, live_replies))
    lone = [r for r in reply_rows.values() if r.author_id == author_id and r.parent_id not in threads]
    for reply in lone:
        if reply.state == LIVE:
            lose(reply.post_id, 1)
            announced.append((reply.id, reply.post_id, []))
            await session.execute(
                update(comments).where(comments.c.id == reply.parent_id).values(reply_count=comments.c.reply_count - 1)
            )
    gone = sorted(set(threads) | {r.id for r in reply_rows.values() if r.parent_id in threads} | {r.id for r in lone})
    if gone:
        await session.execute(delete(comments).where(comments.c.id.in_(gone)))
    return ErasedComments(removed_by_post, announced, len(gone))


async def remove_user_rows(session: Session, user_id: int, limit: int) -> int:
    """Deletes up to `limit` of the caption mentions of the user, then of their comment keys (neither
    counted anywhere; their saves are, see `remove_saves`); how many rows went (less than `limit`:
    none are left). Their cached window of likes and saves goes too (the erasure ends here)."""
    _changed(session, viewers=[user_id])
    removed = 0
    for table, column in (
        (caption_mentions, caption_mentions.c.user_id),
        (comment_requests, comment_requests.c.author_id),
    ):
        if removed >= limit:
            break
        key = table.c.post_id if table is not comment_requests else table.c.request_id
        some = select(key).where(column == user_id).limit(limit - removed)
        result = await session.execute(delete(table).where(column == user_id, key.in_(some)))
        removed += int(result.rowcount)
    return removed


_VIEWER_LIKES = Statement(
    select(likes.c.post_id)
    .where(likes.c.user_id == bindparam("user_id"), likes.c.post_id >= bindparam("since"))
    .order_by(likes.c.post_id.desc())
    .limit(bindparam("limit"))
)
_VIEWER_SAVES = Statement(
    select(saves.c.post_id)
    .where(saves.c.user_id == bindparam("user_id"), saves.c.post_id >= bindparam("since"))
    .order_by(saves.c.post_id.desc())
    .limit(bindparam("limit"))
)


async def viewer_window(session: Session, user_id: int, since: int, limit: int) -> tuple[list[int], list[int]]:
    """Up to `limit` posts with ids >= `since` the user liked, and up to `limit` they saved, each
    newest post first. (likes_by_user leads with the user: the scan reads each of their likes once;
    saves' primary key serves the saves.)"""
    params = {"user_id": user_id, "since": since, "limit": limit}
    liked = [row.post_id for row in await session.execute(_VIEWER_LIKES, params)]
    saved = [row.post_id for row in await session.execute(_VIEWER_SAVES, params)]
    return liked, saved
