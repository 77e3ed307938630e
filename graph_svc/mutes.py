"""The rules of mutes: the muted user's posts leave and stay out of the muter's home feed, and nothing
else changes (the muted user cannot tell: no lookup, list or action of theirs answers differently).

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

from glimpse.events.v1 import events_pb2
from graph_svc import privacy_repository as privacy_repo
from graph_svc import repository as repo
from graph_svc.erasure import require_caller
from graph_svc.privacy import RelatedUser, after_of, relation_page, relation_scope
from graph_svc.visibility import refuse_if_blocked
from mesh.db import Database, Session
from mesh.errors import InvalidArgument, NotFound, invalid_field
from mesh.outbox import Outbox
from mesh.pagination import Page, page_size


class MuteService:
    def __init__(self, *, db: Database, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox

    async def mute(self, muter_id: int, muted_id: int) -> bool:
        """The caller mutes `muted_id` (`graph.muted`); returns whether the mute is new. Idempotent.

        INVALID_ARGUMENT for a bad target or oneself (SELF_MUTE); NOT_FOUND (USER_NOT_FOUND) for an
        unknown target, or one blocked either way with the caller (who does not exist for it);
        UNAUTHENTICATED (ACCOUNT_GONE) if the caller's account is deleted.
        """
        _check_target(muter_id, muted_id)
        async with self._db.unit_of_work() as session:
            await require_caller(session, muter_id)
            await _existing_for(session, muter_id, muted_id)
            created = await privacy_repo.insert_mute(session, muter_id, muted_id)
            if created:
                await self._outbox.add(session, events_pb2.UserMuted(muter_id=muter_id, muted_id=muted_id))
        return created

    async def unmute(self, muter_id: int, muted_id: int) -> bool:
        """Lifts the caller's mute of `muted_id` (`graph.unmuted`); returns whether there was one. The
        same errors as `mute`, except that a blocked target may be unmuted."""
        _check_target(muter_id, muted_id)
        async with self._db.unit_of_work() as session:
            if await repo.get_user(session, muted_id) is None:
                raise _no_such_user(muted_id)
            deleted = await privacy_repo.delete_mute(session, muter_id, muted_id)
            if deleted:
                await self._outbox.add(session, events_pb2.UserUnmuted(muter_id=muter_id, muted_id=muted_id))
        return deleted

    async def list_mutes(self, muter_id: int, size: int, token: str) -> Page[RelatedUser]:
        """The users the caller mutes, newest mute first. INVALID_ARGUMENT for a bad page size or token."""
        limit = page_size(size)
        scope = relation_scope("mutes", muter_id)
        after = after_of(token, scope)
        async with self._db.read_only() as session:
            found = await privacy_repo.list_mutes(session, muter_id, after, limit + 1)
            return await relation_page(session, found, limit, scope)


async def _existing_for(session: Session, viewer_id: int, user_id: int) -> None:
    if await repo.get_user(session, user_id) is None:
        raise _no_such_user(user_id)
    await refuse_if_blocked(session, viewer_id, user_id, _no_such_user(user_id))


def _no_such_user(user_id: int) -> NotFound:
    return NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")


def _check_target(muter_id: int, muted_id: int) -> None:
    if muted_id <= 0:
        raise invalid_field("target_user_id", "must be a user id")
    if muter_id == muted_id:
        raise InvalidArgument("you cannot mute yourself", reason="SELF_MUTE", fields={"target_user_id": "is you"})
