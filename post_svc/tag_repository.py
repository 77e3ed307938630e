"""SQL of hashtags: the tag index and the tags' counts. Every function runs inside the caller's unit of work."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import any_, bindparam, delete, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.types import BigInteger, Integer, Text

from mesh.db import Session, Statement
from mesh.pagination import INT64_MAX
from post_svc.models import post_tags, tags


@dataclass(frozen=True)
class TagRecord:
    name: str
    post_count: int
    id: int  # SearchTags' tie-break and page cursor


# One statement for every count a change moves, its rows taken in name order: two posts changing the
# same tags lock them in the same order and cannot deadlock. A tag first used is inserted. The CHECK
# (post_count >= 0) is tested on the row proposed for insertion, so the value proposed carries the
# direction instead of the delta itself: 1 counts the post in, 0 counts it out (a tag a post leaves
# was counted when the post took it, so its row exists and the 0 is never stored). Exact has a price:
# a tag on every new post (a trend) serialises those creates on its row for the rest of their
# transactions (about a millisecond here); past a few hundred such posts a second, shard the count
# as engagement_svc shards like counts.
_COUNT = Statement(
    text(
        """
        INSERT INTO posts.tags AS t (name, post_count)
        SELECT c.name, CASE WHEN c.delta > 0 THEN 1 ELSE 0 END
          FROM unnest(:names, :deltas) AS c(name, delta)
         ORDER BY c.name COLLATE "C"
            ON CONFLICT (name) DO UPDATE
           SET post_count = t.post_count + CASE WHEN excluded.post_count > 0 THEN 1 ELSE -1 END
        """
    ).bindparams(bindparam("names", type_=ARRAY(Text)), bindparam("deltas", type_=ARRAY(Integer)))
)
# A post's index rows: compiled once (mesh.db.Statement), as they run on every CreatePost.
_ADD_TO_INDEX = Statement(
    insert(post_tags)
    .from_select(
        ["tag", "post_id"],
        select(func.unnest(bindparam("tags", type_=ARRAY(Text))), bindparam("post_id", type_=BigInteger)),
    )
    .on_conflict_do_nothing()
)
_REMOVE_FROM_INDEX = Statement(
    delete(post_tags).where(
        post_tags.c.post_id == bindparam("post_id"), post_tags.c.tag == any_(bindparam("tags", type_=ARRAY(Text)))
    )
)


async def retag_post(session: Session, post_id: int, before: list[str], after: list[str]) -> None:
    """Moves post `post_id` from the tags `before` to the tags `after` (either may be empty: a new post,
    a deleted one): its index rows and the tags' counts. The caller holds the post (just inserted, or
    locked) so that `before` is what the index has. Call it last in the unit of work: the counts'
    row locks are held until the commit, and every statement after it would make each other post
    on those tags wait one more round trip."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    if not added and not removed:
        return
    if removed:
        await session.execute(_REMOVE_FROM_INDEX, {"post_id": post_id, "tags": removed})
    if added:
        await session.execute(_ADD_TO_INDEX, {"post_id": post_id, "tags": added})
    changes = sorted([(tag, 1) for tag in added] + [(tag, -1) for tag in removed])
    await session.execute(_COUNT, {"names": [name for name, _ in changes], "deltas": [d for _, d in changes]})


# Erasure: every post of a batch out of the index at once, and the tags' rows locked in name order
# (as _COUNT takes them) before they are counted down: a batch takes many posts' tags, and locking
# them post by post could lock "b" before "a" and deadlock with a create that takes "a" then "b".
_REMOVE_POSTS_FROM_INDEX = Statement(
    delete(post_tags).where(post_tags.c.post_id == any_(bindparam("post_ids", type_=ARRAY(BigInteger))))
)
_LOCK_TAGS = Statement(
    text(
        """
        SELECT 1 FROM posts.tags
         WHERE name = ANY(:names)
         ORDER BY name COLLATE "C"
           FOR UPDATE
        """
    ).bindparams(bindparam("names", type_=ARRAY(Text)))
)
_COUNT_DOWN = Statement(
    text(
        """
        UPDATE posts.tags AS t
           SET post_count = t.post_count - c.posts
          FROM unnest(:names, :posts) AS c(name, posts)
         WHERE t.name = c.name
        """
    ).bindparams(bindparam("names", type_=ARRAY(Text)), bindparam("posts", type_=ARRAY(Integer)))
)


async def untag_posts(session: Session, posts: Sequence[tuple[int, list[str]]]) -> None:
    """Takes the posts, each (post id, its hashtags as indexed), out of their tags: their index rows
    and one count each, the tags' rows locked in name order first. The caller holds the posts."""
    if not posts:
        return
    await session.execute(_REMOVE_POSTS_FROM_INDEX, {"post_ids": [post_id for post_id, _ in posts]})
    counts = Counter(tag for _, hashtags in posts for tag in set(hashtags))
    if not counts:
        return
    # Python orders str by code point, as the "C" collation orders their UTF-8 bytes.
    names = sorted(counts)
    await session.execute(_LOCK_TAGS, {"names": names})
    await session.execute(_COUNT_DOWN, {"names": names, "posts": [counts[name] for name in names]})


_GET_TAG = Statement(select(tags.c.name, tags.c.post_count, tags.c.id).where(tags.c.name == bindparam("name")))
# Tags in use by prefix, most used first (SearchTags), compiled once. The names starting with a prefix
# are a range of the "C"-collated primary key, from the prefix up to the prefix followed by U+10FFFF
# (`upper`: no tag character sorts above it, the last plane is private use); a range, unlike LIKE
# with a bound pattern, stays an index range in a prepared (generic) plan. The page starts after
# (`count`, `id`) in (post_count DESC, id) order: (INT64_MAX, 0) for the first page.
_SEARCH = Statement(
    select(tags.c.name, tags.c.post_count, tags.c.id)
    .where(
        tags.c.name >= bindparam("prefix", type_=Text),
        tags.c.name < bindparam("upper", type_=Text),
        tags.c.post_count > 0,
        tuple_(-tags.c.post_count, tags.c.id)
        > tuple_(-bindparam("count", type_=BigInteger), bindparam("id", type_=BigInteger)),
    )
    .order_by(tags.c.post_count.desc(), tags.c.id)
    .limit(bindparam("limit"))
)


async def get_tag(session: Session, name: str) -> TagRecord | None:
    row = (await session.execute(_GET_TAG, {"name": name})).first()
    return TagRecord(row.name, row.post_count, row.id) if row else None


async def search_tags(session: Session, prefix: str, after: tuple[int, int] | None, limit: int) -> list[TagRecord]:
    """Tags in use whose name starts with `prefix`, most used first, then oldest first (by id), after
    the keyset `after` = (post_count, id) of the previous page's last tag."""
    count, tag_id = after if after is not None else (INT64_MAX, 0)
    params = {"prefix": prefix, "upper": prefix + "\U0010ffff", "count": count, "id": tag_id, "limit": limit}
    rows = await session.execute(_SEARCH, params)
    return [TagRecord(row.name, row.post_count, row.id) for row in rows]
