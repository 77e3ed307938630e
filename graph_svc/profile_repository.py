"""SQL of the profile: its text fields and the profile picture (graph_svc.profile). Every function runs
inside the caller's unit of work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, update

from graph_svc.models import users
from mesh.db import Session


@dataclass(frozen=True)
class AvatarState:
    """A user row's picture columns, read under its lock."""

    shown_media_id: int | None
    pending_media_id: int | None


async def set_profile(session: Session, user_id: int, values: Mapping[str, str]) -> None:
    """Writes the profile's text columns named in `values` (display_name, bio, website)."""
    await session.execute(update(users).where(users.c.id == user_id).values(**values))


async def lock_avatar(session: Session, user_id: int) -> AvatarState | None:
    """Locks the user's row; its avatar columns, or None if there is no such user."""
    row = (
        await session.execute(
            select(users.c.avatar_media_id, users.c.pending_avatar_media_id)
            .where(users.c.id == user_id)
            .with_for_update()
        )
    ).one_or_none()
    return AvatarState(row.avatar_media_id, row.pending_avatar_media_id) if row else None


async def set_pending_avatar(session: Session, user_id: int, media_id: int | None) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(pending_avatar_media_id=media_id))


async def show_avatar(session: Session, user_id: int, media_id: int, url: str, large_url: str) -> None:
    """Makes `media_id` (with its squares' URLs) the picture shown; nothing is pending any more."""
    await session.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(avatar_media_id=media_id, avatar_url=url, avatar_large_url=large_url, pending_avatar_media_id=None)
    )


async def clear_avatar(session: Session, user_id: int) -> None:
    """No picture shown and none pending."""
    await session.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(avatar_media_id=None, avatar_url=None, avatar_large_url=None, pending_avatar_media_id=None)
    )
