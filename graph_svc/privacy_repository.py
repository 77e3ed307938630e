"""SQL of privacy: follow requests, blocks, mutes, and the visibility queries over them. Every function
runs inside the caller's unit of work.

Each visibility question is one statement, answered from primary keys and the `*_by_blocked`,
`*_by_muted` indexes (graph_svc.models): a pair of users costs an index probe per direction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    CompoundSelect,
    String,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert

from graph_svc.models import blocks, follow_requests, follows, mutes, users
from mesh.db import Session, Statement


@dataclass(frozen=True)
class Relation:
    """One row of a user's relations (a block, a mute, an incoming request): the other user's id and
    since when."""

    user_id: int
    created_at: dt.datetime


@dataclass(frozen=True)
class AuthorFacts:
    """What the visibility rule reads about one author, for one viewer."""

    is_private: bool
    viewer_follows: bool
    blocked: bool  # either of the two blocks the other


@dataclass(frozen=True)
class ViewerRelations:
    blocked: list[int]  # blocked by the viewer, or blocking the viewer
    muted: list[int]
    private_followees: list[int]


def not_blocked_with(viewer_id: int | ColumnElement[int], other: ColumnElement[int]) -> ColumnElement[bool]:
    """True where neither `viewer_id` nor the user in column `other` blocks the other (two key probes)."""
    return and_(
        ~exists().where(blocks.c.blocker_id == viewer_id, blocks.c.blocked_id == other),
        ~exists().where(blocks.c.blocker_id == other, blocks.c.blocked_id == viewer_id),
    )


def excluded_from_audience(author_id: int | ColumnElement[int]) -> CompoundSelect:
    """The users who must not receive `author_id`'s posts in their home feeds: those who mute the
    author, block the author, or are blocked by the author. Each part reads the author's own index
    range (usually empty), so the set costs the same whatever the size of the audience it filters."""
    return union(
        select(mutes.c.muter_id.label("user_id")).where(mutes.c.muted_id == author_id),
        select(blocks.c.blocker_id).where(blocks.c.blocked_id == author_id),
        select(blocks.c.blocked_id).where(blocks.c.blocker_id == author_id),
    )


_A, _B = bindparam("a", type_=BigInteger), bindparam("b", type_=BigInteger)
# GetUser, LookupUser and every list of a user's follows ask it (graph_svc.visibility.refuse_if_blocked).
_BLOCKS_BETWEEN = Statement(
    select(blocks.c.blocker_id).where(
        or_(
            and_(blocks.c.blocker_id == _A, blocks.c.blocked_id == _B),
            and_(blocks.c.blocker_id == _B, blocks.c.blocked_id == _A),
        )
    )
)


async def blocks_between(session: Session, a: int, b: int) -> tuple[bool, bool]:
    """(a blocks b, b blocks a)."""
    rows = await session.execute(_BLOCKS_BETWEEN, {"a": a, "b": b})
    blockers = set(rows.scalars())
    return a in blockers, b in blockers


async def _insert_pair(session: Session, table: Table, first: int, second: int) -> bool:
    """Inserts (first, second) into a relation table keyed by the pair; False if it was there."""
    key = [column.name for column in table.primary_key.columns]
    result = await session.execute(
        insert(table).values({key[0]: first, key[1]: second}).on_conflict_do_nothing().returning(table.c[key[0]])
    )
    return result.first() is not None


async def _delete_pair(session: Session, table: Table, first: int, second: int) -> bool:
    """Deletes (first, second) from a relation table keyed by the pair; False if it was not there."""
    own, other = table.primary_key.columns
    result = await session.execute(delete(table).where(own == first, other == second).returning(own))
    return result.first() is not None


async def _list_relations(
    session: Session,
    table: Table,
    own: ColumnElement[int],
    other: ColumnElement[int],
    user_id: int,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> list[Relation]:
    """A page of `user_id`'s rows in `table` (`own` = the user), newest first, after the keyset `after`,
    read along the table's `(own, created_at DESC, other DESC)` index."""
    query = select(other.label("user_id"), table.c.created_at).where(own == user_id)
    if after is not None:
        query = query.where(tuple_(table.c.created_at, other) < tuple_(*after))
    rows = await session.execute(query.order_by(table.c.created_at.desc(), other.desc()).limit(limit))
    return [Relation(row.user_id, row.created_at) for row in rows]


# Follow requests


async def insert_follow_request(session: Session, requester_id: int, target_id: int) -> bool:
    """True if the request is new; False if it was pending already."""
    return await _insert_pair(session, follow_requests, requester_id, target_id)


async def delete_follow_request(session: Session, requester_id: int, target_id: int) -> bool:
    return await _delete_pair(session, follow_requests, requester_id, target_id)


async def outgoing_request_count(session: Session, requester_id: int) -> int:
    """Pending requests made by `requester_id` (read along the primary key)."""
    query = select(func.count()).where(follow_requests.c.requester_id == requester_id)
    return int((await session.execute(query)).scalar_one())


async def incoming_requester_ids(session: Session, target_id: int) -> list[int]:
    rows = await session.execute(select(follow_requests.c.requester_id).where(follow_requests.c.target_id == target_id))
    return list(rows.scalars())


async def delete_incoming_requests(session: Session, target_id: int) -> list[int]:
    """Deletes every pending request to `target_id`; returns the requesters, oldest request first."""
    deleted = (
        delete(follow_requests)
        .where(follow_requests.c.target_id == target_id)
        .returning(follow_requests.c.requester_id, follow_requests.c.created_at)
        .cte("deleted")
    )
    rows = await session.execute(select(deleted.c.requester_id).order_by(deleted.c.created_at, deleted.c.requester_id))
    return list(rows.scalars())


async def list_incoming_requests(
    session: Session, target_id: int, after: tuple[dt.datetime, int] | None, limit: int
) -> list[Relation]:
    """A page of the requests to follow `target_id`, newest first."""
    t = follow_requests
    return await _list_relations(session, t, t.c.target_id, t.c.requester_id, target_id, after, limit)


# Blocks and mutes


async def insert_block(session: Session, blocker_id: int, blocked_id: int) -> bool:
    return await _insert_pair(session, blocks, blocker_id, blocked_id)


async def delete_block(session: Session, blocker_id: int, blocked_id: int) -> bool:
    return await _delete_pair(session, blocks, blocker_id, blocked_id)


async def list_blocks(
    session: Session, blocker_id: int, after: tuple[dt.datetime, int] | None, limit: int
) -> list[Relation]:
    return await _list_relations(session, blocks, blocks.c.blocker_id, blocks.c.blocked_id, blocker_id, after, limit)


async def insert_mute(session: Session, muter_id: int, muted_id: int) -> bool:
    return await _insert_pair(session, mutes, muter_id, muted_id)


async def delete_mute(session: Session, muter_id: int, muted_id: int) -> bool:
    return await _delete_pair(session, mutes, muter_id, muted_id)


async def list_mutes(
    session: Session, muter_id: int, after: tuple[dt.datetime, int] | None, limit: int
) -> list[Relation]:
    return await _list_relations(session, mutes, mutes.c.muter_id, mutes.c.muted_id, muter_id, after, limit)


# Visibility
#
# Behind every post view whose answer a caller has not cached (CheckVisibility), every feed page's
# filters (GetViewerFilters) and every post's fan-out (FilterAudience), so compiled once
# (mesh.db.Statement): compiling a Core statement cost more CPU than running it. Lists of ids are
# one array parameter (`= ANY(:ids)`), so the text is the same whatever their length.

_VIEWER_ID = bindparam("viewer_id", type_=BigInteger)
_AUTHOR_ID = bindparam("author_id", type_=BigInteger)


def _author_facts_statement() -> Statement:
    viewer_follows = exists().where(follows.c.follower_id == _VIEWER_ID, follows.c.followee_id == users.c.id)
    blocked = ~not_blocked_with(_VIEWER_ID, users.c.id)
    return Statement(
        select(
            users.c.id,
            users.c.is_private,
            viewer_follows.label("viewer_follows"),
            blocked.label("blocked"),
        ).where(users.c.id == any_(bindparam("author_ids", type_=ARRAY(BigInteger))))
    )


def _viewer_relations_statement() -> Statement:
    blocked, muted, private = (literal_column(f"'{kind}'", String) for kind in ("blocked", "muted", "private"))
    parts = union_all(
        select(blocked.label("kind"), blocks.c.blocked_id.label("user_id")).where(blocks.c.blocker_id == _VIEWER_ID),
        select(blocked, blocks.c.blocker_id).where(blocks.c.blocked_id == _VIEWER_ID),
        select(muted, mutes.c.muted_id).where(mutes.c.muter_id == _VIEWER_ID),
        select(private, follows.c.followee_id)
        .select_from(follows.join(users, users.c.id == follows.c.followee_id))
        .where(follows.c.follower_id == _VIEWER_ID, users.c.is_private),
    ).subquery()
    return Statement(select(parts.c.kind, parts.c.user_id).order_by(parts.c.user_id))


def _audience_exclusions_statement() -> Statement:
    excluded = excluded_from_audience(_AUTHOR_ID).subquery()
    # UNION already removed repeats.
    return Statement(
        select(excluded.c.user_id)
        .where(excluded.c.user_id == any_(bindparam("user_ids", type_=ARRAY(BigInteger))))
        .order_by(excluded.c.user_id)
    )


_AUTHOR_FACTS = _author_facts_statement()
_VIEWER_RELATIONS = _viewer_relations_statement()
_AUDIENCE_EXCLUSIONS = _audience_exclusions_statement()


async def author_facts(session: Session, viewer_id: int, author_ids: list[int]) -> dict[int, AuthorFacts]:
    """For each existing author of `author_ids`: private or not, followed by `viewer_id` or not, and
    blocked either way; one statement (a key probe per author into users, follows and blocks twice).
    `viewer_id` 0 (anonymous) follows and blocks nobody."""
    rows = await session.execute(_AUTHOR_FACTS, {"viewer_id": viewer_id, "author_ids": author_ids})
    return {row.id: AuthorFacts(row.is_private, row.viewer_follows, row.blocked) for row in rows}


async def viewer_relations(session: Session, viewer_id: int) -> ViewerRelations:
    """The viewer's blocks (both ways), mutes and private followees, in one statement: three index
    ranges of the viewer, and its followees joined to their user rows (a key probe per followee)."""
    rows = await session.execute(_VIEWER_RELATIONS, {"viewer_id": viewer_id})
    found: dict[str, list[int]] = {"blocked": [], "muted": [], "private": []}
    for row in rows:
        bucket = found[row.kind]
        if not bucket or bucket[-1] != row.user_id:  # a mutual block appears twice
            bucket.append(row.user_id)
    return ViewerRelations(found["blocked"], found["muted"], found["private"])


async def audience_exclusions(session: Session, author_id: int, user_ids: list[int]) -> list[int]:
    """Those of `user_ids` excluded from `author_id`'s audience (excluded_from_audience), ascending."""
    rows = await session.execute(_AUDIENCE_EXCLUSIONS, {"author_id": author_id, "user_ids": user_ids})
    return list(rows.scalars())
