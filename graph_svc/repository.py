"""SQL of the graph schema. Every function runs inside the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import IntegrityError
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Integer,
    Text,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from graph_svc.models import follows, users
from graph_svc.privacy_repository import excluded_from_audience, not_blocked_with
from mesh.db import Session, Statement
from mesh.errors import AlreadyExists


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    email: str
    password_hash: str
    display_name: str
    bio: str
    follower_count: int
    following_count: int
    created_at: dt.datetime
    is_private: bool
    # The profile (graph_svc.profile): "" or a normalised URL; the picture shown, if any.
    website: str = ""
    avatar_media_id: int | None = None
    avatar_url: str | None = None
    avatar_large_url: str | None = None
    pending_avatar_media_id: int | None = None


@dataclass(frozen=True)
class FollowRecord:
    user: UserRecord
    created_at: dt.datetime


@dataclass(frozen=True)
class LockedUser:
    """What follow rules read of a user row locked for the change."""

    following_count: int
    is_private: bool


_USER_COLUMNS = [users.c[name] for name in UserRecord.__dataclass_fields__]


async def insert_user(session: Session, record: UserRecord) -> UserRecord:
    """Inserts a user; ALREADY_EXISTS naming the field if the username or email is taken."""
    values = {name: getattr(record, name) for name in UserRecord.__dataclass_fields__ if name != "created_at"}
    try:
        async with session.begin_nested():
            row = (await session.execute(users.insert().values(**values).returning(*_USER_COLUMNS))).one()
    except IntegrityError as exc:
        constraint = exc.diag.constraint_name or ""
        field = "email" if "email" in constraint else "username"
        raise AlreadyExists(
            f"{field}: is already taken", reason=f"{field.upper()}_TAKEN", fields={field: "taken"}
        ) from exc
    return UserRecord(**row._mapping)


# Statements run for every post (the fan-out's follower count and follower stream) and every feed
# page that misses its caches (authors, followees), compiled once (mesh.db.Statement).
_USER_ID = bindparam("user_id", type_=BigInteger)
_GET_USER = Statement(select(*_USER_COLUMNS).where(users.c.id == _USER_ID))
_GET_USERS = Statement(select(*_USER_COLUMNS).where(users.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))))
_FOLLOWER_COUNT = Statement(select(users.c.follower_count).where(users.c.id == _USER_ID))
_FOLLOWERS_AFTER = select(follows.c.follower_id).where(
    follows.c.followee_id == _USER_ID, follows.c.follower_id > bindparam("after_id", type_=BigInteger)
)
_FOLLOWER_PAGE = Statement(_FOLLOWERS_AFTER.order_by(follows.c.follower_id).limit(bindparam("limit")))
# Every feed page that misses feed_svc's followee cache (ListFolloweeIds).
_FOLLOWEE_IDS = Statement(select(follows.c.followee_id).where(follows.c.follower_id == _USER_ID))
_AUDIENCE_PAGE = Statement(
    _FOLLOWERS_AFTER.where(follows.c.follower_id.not_in(excluded_from_audience(_USER_ID)))
    .order_by(follows.c.follower_id)
    .limit(bindparam("limit"))
)


async def get_user(session: Session, user_id: int) -> UserRecord | None:
    row = (await session.execute(_GET_USER, {"user_id": user_id})).one_or_none()
    return UserRecord(*row) if row else None


async def get_users(session: Session, user_ids: list[int]) -> dict[int, UserRecord]:
    rows = await session.execute(_GET_USERS, {"ids": user_ids})
    return {row.id: UserRecord(*row) for row in rows}


async def follower_count(session: Session, user_id: int) -> int | None:
    """How many users follow `user_id`; None for an unknown user."""
    return (await session.execute(_FOLLOWER_COUNT, {"user_id": user_id})).scalar_one_or_none()


async def find_user(session: Session, *, username: str | None = None, email: str | None = None) -> UserRecord | None:
    column, value = (users.c.username, username) if username is not None else (users.c.email, email)
    row = (await session.execute(select(*_USER_COLUMNS).where(column == value))).one_or_none()
    return UserRecord(**row._mapping) if row else None


async def set_password_hash(session: Session, user_id: int, password_hash: str) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


@dataclass(frozen=True)
class SearchHit:
    """A user found by search_users, with where it ranks (see there)."""

    user: UserRecord
    tier: int
    score: int


# Where a hit ranks, best first (SearchHit.tier). One typo ranks above two: within a tier, names are
# ordered by similarity, and a display name's ("Reed 9") word similarity can tie every user of a
# community, leaving follower count to put a two-typo name above the one-typo name that was meant.
EXACT, PREFIX, ONE_EDIT, TWO_EDITS, SIMILAR = range(5)
# Similarity (0..1) is ranked and paged on in millionths: an exact integer, so a page token repeats it.
SCORE_SCALE = 1_000_000


def _search_statement() -> Statement:
    """The one statement of search_users, compiled once with its parameters bound by name: `q`, the
    page's start (`tier`, `score`, `followers`, `username`: the previous page's last hit; for the first
    page a tier of -1, before any) and the `viewer` (0 for none: no block names user 0), `limit`."""
    q = bindparam("q", type_=Text)
    candidates = func.graph.user_search_candidates(q).table_valued("id").render_derived("candidates")
    similarity = func.greatest(func.similarity(users.c.username, q), func.word_similarity(q, users.c.display_name))
    edits = func.levenshtein_less_equal(users.c.username, q, 2)
    tier = case(
        (users.c.username == q, EXACT),
        (func.starts_with(users.c.username, q), PREFIX),
        (edits <= 1, ONE_EDIT),
        (edits <= 2, TWO_EDITS),
        else_=SIMILAR,
    )
    found = (
        select(*_USER_COLUMNS, tier.label("tier"), cast(func.round(similarity * SCORE_SCALE), Integer).label("score"))
        .select_from(candidates.join(users, users.c.id == candidates.c.id))
        .where(not_blocked_with(bindparam("viewer", type_=BigInteger), users.c.id))
    )
    hits = found.subquery("hits")
    return Statement(
        select(hits)
        # (tier, score DESC, follower_count DESC, username) as one row comparison.
        .where(
            tuple_(hits.c.tier, -hits.c.score, -hits.c.follower_count, hits.c.username)
            > tuple_(
                bindparam("tier", type_=Integer),
                -bindparam("score", type_=Integer),
                -bindparam("followers", type_=BigInteger),
                bindparam("username", type_=Text),
            )
        )
        .order_by(hits.c.tier, hits.c.score.desc(), hits.c.follower_count.desc(), hits.c.username)
        .limit(bindparam("limit"))
    )


SEARCH = _search_statement()


def search_params(
    query: str, after: tuple[int, int, int, str] | None, limit: int, viewer_id: int | None
) -> dict[str, Any]:
    """SEARCH's parameters (bench/search.py explains the statement with them)."""
    tier, score, followers, username = after if after is not None else (-1, 0, 0, "")
    return {
        "q": query,
        "tier": tier,
        "score": score,
        "followers": followers,
        "username": username,
        "viewer": viewer_id or 0,
        "limit": limit,
    }


async def search_users(
    session: Session,
    query: str,
    after: tuple[int, int, int, str] | None,
    limit: int,
    *,
    viewer_id: int | None = None,
) -> list[SearchHit]:
    """Users matching `query` (trimmed, lower-case), best first: the exact username (tier EXACT), then
    usernames starting with it (PREFIX), then usernames one edit away (ONE_EDIT), then two (TWO_EDITS;
    Levenshtein: an insertion, deletion or substitution each), then the other candidates (SIMILAR:
    trigram-similar usernames, display names with a similar word). Within a tier: by score (the
    better of the username's trigram similarity and the display name's word similarity, in
    millionths) descending, then follower count descending, then username. `after` is the previous
    page's last (tier, score, follower_count, username); users that block or are blocked by
    `viewer_id` are left out.

    The candidates come from `graph.user_search_candidates` (migration 0003: the username's btree
    and two trigram GIN indexes, with the similarity thresholds), each then read by primary key, so
    the cost follows the number of candidates, not of users. A name with too few trigrams in common
    with the query (two typos in a 3-character name) is not a candidate.
    """
    rows = await session.execute(SEARCH, search_params(query, after, limit, viewer_id))
    out = []
    for row in rows:
        fields = dict(row._mapping)
        found_tier, score = fields.pop("tier"), fields.pop("score")
        out.append(SearchHit(UserRecord(**fields), found_tier, score))
    return out


async def lock_users(session: Session, user_ids: list[int]) -> dict[int, LockedUser]:
    """Locks the users' rows in id order (so two opposite follows cannot deadlock).

    Returns id -> its following count and privacy, for the ids that exist.
    """
    rows = await session.execute(
        select(users.c.id, users.c.following_count, users.c.is_private)
        .where(users.c.id.in_(user_ids))
        .order_by(users.c.id)
        .with_for_update()
    )
    return {row.id: LockedUser(row.following_count, row.is_private) for row in rows}


async def set_private(session: Session, user_id: int, is_private: bool) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(is_private=is_private))


async def follow_exists(session: Session, follower_id: int, followee_id: int) -> bool:
    query = select(follows.c.follower_id).where(
        follows.c.follower_id == follower_id, follows.c.followee_id == followee_id
    )
    return (await session.execute(query)).first() is not None


async def insert_follow(session: Session, follower_id: int, followee_id: int) -> bool:
    """True if the follow is new; False if it already existed."""
    result = await session.execute(
        insert(follows)
        .values(follower_id=follower_id, followee_id=followee_id)
        .on_conflict_do_nothing()
        .returning(follows.c.follower_id)
    )
    return result.first() is not None


async def delete_follow(session: Session, follower_id: int, followee_id: int) -> bool:
    result = await session.execute(
        delete(follows)
        .where(follows.c.follower_id == follower_id, follows.c.followee_id == followee_id)
        .returning(follows.c.follower_id)
    )
    return result.first() is not None


async def insert_followers(session: Session, follower_ids: list[int], followee_id: int) -> list[int]:
    """Adds follows of `followee_id` by each of `follower_ids` in one statement; returns the follower
    ids whose follow is new."""
    if not follower_ids:
        return []
    result = await session.execute(
        insert(follows)
        .values([{"follower_id": f, "followee_id": followee_id} for f in follower_ids])
        .on_conflict_do_nothing()
        .returning(follows.c.follower_id)
    )
    return list(result.scalars())


async def add_followers_to_counts(session: Session, follower_ids: list[int], followee_id: int) -> None:
    """Counts new follows of `followee_id` by `follower_ids` (rows locked by the caller, in id order)."""
    if not follower_ids:
        return
    await session.execute(
        update(users).where(users.c.id.in_(follower_ids)).values(following_count=users.c.following_count + 1)
    )
    await session.execute(
        update(users).where(users.c.id == followee_id).values(follower_count=users.c.follower_count + len(follower_ids))
    )


async def add_to_counts(session: Session, follower_id: int, followee_id: int, delta: int) -> None:
    await session.execute(
        update(users).where(users.c.id == follower_id).values(following_count=users.c.following_count + delta)
    )
    await session.execute(
        update(users).where(users.c.id == followee_id).values(follower_count=users.c.follower_count + delta)
    )


async def list_follows(
    session: Session,
    user_id: int,
    *,
    followers: bool,
    after: tuple[dt.datetime, int] | None,
    limit: int,
    viewer_id: int | None = None,
) -> list[FollowRecord]:
    """A page of a user's followers (or followees), newest follow first, after the keyset `after`;
    without the users that block or are blocked by `viewer_id`."""
    own, other = (
        (follows.c.followee_id, follows.c.follower_id) if followers else (follows.c.follower_id, follows.c.followee_id)
    )
    query = (
        select(*_USER_COLUMNS, follows.c.created_at.label("followed_at"))
        .select_from(follows.join(users, users.c.id == other))
        .where(own == user_id)
    )
    if after is not None:
        query = query.where(tuple_(follows.c.created_at, other) < tuple_(*after))
    if viewer_id is not None:
        query = query.where(not_blocked_with(viewer_id, other))
    rows = await session.execute(query.order_by(follows.c.created_at.desc(), other.desc()).limit(limit))
    out = []
    for row in rows:
        fields = dict(row._mapping)
        followed_at = fields.pop("followed_at")
        out.append(FollowRecord(UserRecord(**fields), followed_at))
    return out


async def follower_ids_after(
    session: Session, user_id: int, after_id: int, limit: int, *, audience_only: bool = False
) -> list[int]:
    """Follower ids of `user_id` above `after_id`, ascending; with `audience_only`, without those
    excluded from the user's audience (privacy_repository.excluded_from_audience)."""
    page = _AUDIENCE_PAGE if audience_only else _FOLLOWER_PAGE
    rows = await session.execute(page, {"user_id": user_id, "after_id": after_id, "limit": limit})
    return rows.scalars()


async def followee_ids(session: Session, user_id: int) -> list[int]:
    rows = await session.execute(_FOLLOWEE_IDS, {"user_id": user_id})
    return rows.scalars()


async def celebrity_followee_ids(session: Session, user_id: int, threshold: int) -> list[int]:
    rows = await session.execute(
        select(users.c.id)
        .select_from(follows.join(users, users.c.id == follows.c.followee_id))
        .where(follows.c.follower_id == user_id, users.c.follower_count > threshold)
    )
    return list(rows.scalars())


async def recount(session: Session, user_ids: list[int]) -> None:
    """Recomputes follower/following counts of `user_ids` from the follows table (bulk loads)."""
    follower_counts = select(func.count()).where(follows.c.followee_id == users.c.id).scalar_subquery()
    following_counts = select(func.count()).where(follows.c.follower_id == users.c.id).scalar_subquery()
    await session.execute(
        update(users)
        .where(users.c.id.in_(user_ids))
        .values(follower_count=follower_counts, following_count=following_counts)
    )
