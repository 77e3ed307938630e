"""SQL of sessions (graph.sessions). Every function runs inside the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, delete, func, select, update

from graph_svc.models import sessions
from mesh.db import Session, Statement


@dataclass(frozen=True)
class SessionRecord:
    id: int
    user_id: int
    device_label: str
    refresh_token_hash: bytes
    generation: int
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    revoke_reason: str | None


_COLUMNS = [sessions.c[name] for name in SessionRecord.__dataclass_fields__]
_LIVE = (sessions.c.revoked_at.is_(None), sessions.c.expires_at > func.now())


async def insert_session(session: Session, record: SessionRecord) -> None:
    await session.execute(
        sessions.insert().values(
            id=record.id,
            user_id=record.user_id,
            device_label=record.device_label,
            refresh_token_hash=record.refresh_token_hash,
            generation=record.generation,
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            expires_at=record.expires_at,
        )
    )


async def lock_session(session: Session, session_id: int) -> SessionRecord | None:
    """The session row, locked until the unit of work ends (a refresh rotates under this lock, so two
    refreshes of one session take turns); None if there is none."""
    row = (await session.execute(select(*_COLUMNS).where(sessions.c.id == session_id).with_for_update())).one_or_none()
    return SessionRecord(*row) if row else None


async def rotate(
    session: Session, session_id: int, *, refresh_token_hash: bytes, generation: int, expires_at: dt.datetime
) -> None:
    """Stores the new current refresh token's hash and generation, and the time of this use."""
    await session.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(
            refresh_token_hash=refresh_token_hash,
            generation=generation,
            expires_at=expires_at,
            last_used_at=func.now(),
        )
    )


async def revoke(session: Session, user_id: int, session_ids: list[int] | None, reason: str) -> list[int]:
    """Revokes the live sessions of `user_id` among `session_ids` (None: all of them); returns the ids
    that were live."""
    statement = update(sessions).where(sessions.c.user_id == user_id, *_LIVE)
    if session_ids is not None:
        statement = statement.where(sessions.c.id.in_(session_ids))
    result = await session.execute(
        statement.values(revoked_at=func.now(), revoke_reason=reason).returning(sessions.c.id)
    )
    return list(result.scalars())


async def revoke_all_but(session: Session, user_id: int, keep_id: int, reason: str) -> list[int]:
    """Revokes every live session of `user_id` except `keep_id`; returns the revoked ids."""
    result = await session.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.id != keep_id, *_LIVE)
        .values(revoked_at=func.now(), revoke_reason=reason)
        .returning(sessions.c.id)
    )
    return list(result.scalars())


async def get_session(session: Session, session_id: int) -> SessionRecord | None:
    row = (await session.execute(select(*_COLUMNS).where(sessions.c.id == session_id))).one_or_none()
    return SessionRecord(*row) if row else None


async def live_sessions(session: Session, user_id: int, *, before_id: int | None, limit: int) -> list[SessionRecord]:
    """The live sessions of `user_id`, newest first (ids are time-ordered), after the cursor's id."""
    query = select(*_COLUMNS).where(sessions.c.user_id == user_id, *_LIVE)
    if before_id is not None:
        query = query.where(sessions.c.id < before_id)
    rows = await session.execute(query.order_by(sessions.c.id.desc()).limit(limit))
    return [SessionRecord(*row) for row in rows]


# CheckSessions asks it for the sessions of every authenticated request a gateway has not cached:
# compiled once (mesh.db.Statement), the ids one array parameter.
_LIVE_AMONG = Statement(
    select(sessions.c.id).where(sessions.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))), *_LIVE)
)


async def live_among(session: Session, session_ids: list[int]) -> list[int]:
    """Those of `session_ids` that are live."""
    rows = await session.execute(_LIVE_AMONG, {"ids": session_ids})
    return list(rows.scalars())


async def prune_ended(session: Session, user_id: int, ended_before: dt.datetime) -> int:
    """Deletes `user_id`'s sessions that were revoked or expired before `ended_before`; returns how many."""
    result = await session.execute(
        delete(sessions).where(
            sessions.c.user_id == user_id,
            (sessions.c.revoked_at < ended_before) | (sessions.c.expires_at < ended_before),
        )
    )
    return result.rowcount


async def delete_user_sessions(session: Session, user_id: int) -> int:
    """Deletes every session row of `user_id`, live or not; returns how many."""
    result = await session.execute(delete(sessions).where(sessions.c.user_id == user_id))
    return result.rowcount
