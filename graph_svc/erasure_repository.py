"""SQL of an account's erasure from the graph schema (graph_svc.erasure). Every function runs inside
the caller's unit of work."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import any_, bindparam, delete, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.types import BigInteger

from graph_svc.models import blocks, follow_requests, follows, mutes, reports, username_holds, users
from mesh.db import Session

_IDS = bindparam("ids", type_=ARRAY(BigInteger))


async def lock_user_and_neighbours(session: Session, user_id: int) -> list[int]:
    """Locks, in id order as repository.lock_users does (so a concurrent follow cannot deadlock with
    it), the rows of `user_id` and of everyone it follows or is followed by; returns the locked ids."""
    followees = select(follows.c.followee_id).where(follows.c.follower_id == user_id)
    followers = select(follows.c.follower_id).where(follows.c.followee_id == user_id)
    rows = await session.execute(
        select(users.c.id)
        .where(or_(users.c.id == user_id, users.c.id.in_(followees), users.c.id.in_(followers)))
        .order_by(users.c.id)
        .with_for_update()
    )
    return list(rows.scalars())


async def hold_caller(session: Session, user_id: int) -> bool:
    """Whether `user_id`'s account exists, its row then held (FOR KEY SHARE) until the unit of work
    ends: an erasure, which locks the row FOR UPDATE, waits for the change and then removes its rows,
    or the change waits for the erasure and finds no account. For changes that write a row holding
    the caller's id without locking the caller's row otherwise (mutes, reports, sessions)."""
    row = await session.execute(select(users.c.id).where(users.c.id == user_id).with_for_update(key_share=True))
    return row.first() is not None


async def remove_follows(session: Session, user_id: int) -> tuple[int, int]:
    """Deletes `user_id`'s follows both ways and takes each from the other user's count; returns
    (how many it followed, how many followed it)."""
    followees = list(
        (
            await session.execute(
                delete(follows).where(follows.c.follower_id == user_id).returning(follows.c.followee_id)
            )
        ).scalars()
    )
    followers = list(
        (
            await session.execute(
                delete(follows).where(follows.c.followee_id == user_id).returning(follows.c.follower_id)
            )
        ).scalars()
    )
    if followees:
        await session.execute(
            update(users).where(users.c.id == any_(_IDS)).values(follower_count=users.c.follower_count - 1),
            {"ids": followees},
        )
    if followers:
        await session.execute(
            update(users).where(users.c.id == any_(_IDS)).values(following_count=users.c.following_count - 1),
            {"ids": followers},
        )
    return len(followees), len(followers)


async def remove_relations(session: Session, user_id: int) -> None:
    """Deletes `user_id`'s follow requests, blocks and mutes, both ways."""
    for table, one, other in (
        (follow_requests, follow_requests.c.requester_id, follow_requests.c.target_id),
        (blocks, blocks.c.blocker_id, blocks.c.blocked_id),
        (mutes, mutes.c.muter_id, mutes.c.muted_id),
    ):
        await session.execute(delete(table).where(or_(one == user_id, other == user_id)))


async def forget_reporter(session: Session, user_id: int) -> None:
    """The reports `user_id` made stay, without their reporter (reporter_id NULL)."""
    await session.execute(update(reports).where(reports.c.reporter_id == user_id).values(reporter_id=None))


async def hold_username(session: Session, username: str, released_at: dt.datetime) -> None:
    await session.execute(
        insert(username_holds)
        .values(username=username, released_at=released_at)
        .on_conflict_do_update(index_elements=[username_holds.c.username], set_={"released_at": released_at})
    )


async def username_held_until(session: Session, username: str) -> dt.datetime | None:
    """When `username`'s hold ends, if it is held now."""
    return (
        await session.execute(
            select(username_holds.c.released_at).where(
                username_holds.c.username == username, username_holds.c.released_at > dt.datetime.now(dt.UTC)
            )
        )
    ).scalar_one_or_none()


async def delete_user(session: Session, user_id: int) -> None:
    await session.execute(delete(users).where(users.c.id == user_id))
