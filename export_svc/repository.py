"""SQL of the exports schema. Every function runs inside the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from export_svc.models import EXPIRED, FAILED, IN_PROGRESS, PENDING, READY, RUNNING, exports
from mesh.db import Session


@dataclass(frozen=True)
class ExportRecord:
    id: int
    user_id: int
    state: str
    attempts: int
    failure_reason: str | None
    object_key: str | None
    upload_id: str | None
    size_bytes: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    expire_at: dt.datetime


_COLUMNS = [
    exports.c.id,
    exports.c.user_id,
    exports.c.state,
    exports.c.attempts,
    exports.c.failure_reason,
    exports.c.object_key,
    exports.c.upload_id,
    exports.c.size_bytes,
    exports.c.created_at,
    exports.c.updated_at,
    exports.c.expire_at,
]


def _record(row: object) -> ExportRecord:
    return ExportRecord(**row._mapping)  # type: ignore[attr-defined]


async def insert_export(
    session: Session, export_id: int, user_id: int, request_id: str, created_at: dt.datetime, expire_at: dt.datetime
) -> bool:
    """A PENDING export; False (nothing written) if the user already has one with this request id or
    one in progress (the unique indexes exports_request_once and exports_one_in_progress)."""
    result = await session.execute(
        insert(exports)
        .values(
            id=export_id,
            user_id=user_id,
            request_id=request_id,
            state=PENDING,
            created_at=created_at,
            updated_at=created_at,
            expire_at=expire_at,
        )
        .on_conflict_do_nothing()
        .returning(exports.c.id)
    )
    return result.first() is not None


async def by_request(session: Session, user_id: int, request_id: str) -> ExportRecord | None:
    query = select(*_COLUMNS).where(exports.c.user_id == user_id, exports.c.request_id == request_id)
    row = (await session.execute(query)).first()
    return None if row is None else _record(row)


async def in_progress(session: Session, user_id: int) -> ExportRecord | None:
    """The user's PENDING or RUNNING export, if any (at most one: exports_one_in_progress)."""
    query = select(*_COLUMNS).where(exports.c.user_id == user_id, exports.c.state.in_(IN_PROGRESS))
    row = (await session.execute(query)).first()
    return None if row is None else _record(row)


async def requested_since(session: Session, user_id: int, since: dt.datetime) -> tuple[int, dt.datetime | None]:
    """How many exports the user requested at or after `since` that did not fail (a failed build was
    our fault, not the user's), and when the oldest of them was requested."""
    query = select(func.count(), func.min(exports.c.created_at)).where(
        exports.c.user_id == user_id, exports.c.created_at >= since, exports.c.state != FAILED
    )
    count, oldest = (await session.execute(query)).one()
    return int(count), oldest


async def get_export(session: Session, export_id: int) -> ExportRecord | None:
    row = (await session.execute(select(*_COLUMNS).where(exports.c.id == export_id))).first()
    return None if row is None else _record(row)


async def claim(session: Session, export_id: int) -> ExportRecord | None:
    """Starts an attempt at building the export: RUNNING, one more attempt, the row locked until the
    transaction ends. None if there is nothing to build (built, failed, expired or erased)."""
    result = await session.execute(
        update(exports)
        .where(exports.c.id == export_id, exports.c.state.in_(IN_PROGRESS), exports.c.expire_at > func.now())
        .values(state=RUNNING, attempts=exports.c.attempts + 1, updated_at=func.now())
        .returning(*_COLUMNS)
    )
    row = result.first()
    return None if row is None else _record(row)


async def set_upload(session: Session, export_id: int, object_key: str | None, upload_id: str | None) -> bool:
    """Records (or clears) the multipart upload a build has open; False if the export is gone."""
    result = await session.execute(
        update(exports)
        .where(exports.c.id == export_id, exports.c.state == RUNNING)
        .values(object_key=object_key, upload_id=upload_id, updated_at=func.now())
        .returning(exports.c.id)
    )
    return result.first() is not None


async def mark_ready(session: Session, export_id: int, object_key: str, size_bytes: int) -> bool:
    """The zip is stored: READY. False if the export was erased (or expired) meanwhile."""
    result = await session.execute(
        update(exports)
        .where(exports.c.id == export_id, exports.c.state == RUNNING)
        .values(state=READY, object_key=object_key, size_bytes=size_bytes, upload_id=None, updated_at=func.now())
        .returning(exports.c.id)
    )
    return result.first() is not None


async def mark_failed(session: Session, export_id: int, reason: str) -> bool:
    """Every attempt failed: FAILED with `reason` (for the user to read). False if not in progress."""
    result = await session.execute(
        update(exports)
        .where(exports.c.id == export_id, exports.c.state.in_(IN_PROGRESS))
        .values(state=FAILED, failure_reason=reason, upload_id=None, updated_at=func.now())
        .returning(exports.c.id)
    )
    return result.first() is not None


async def note_failure(session: Session, export_id: int, reason: str) -> None:
    """Keeps the last attempt's error on an export that will be retried (it stays RUNNING)."""
    await session.execute(
        update(exports)
        .where(exports.c.id == export_id, exports.c.state == RUNNING)
        .values(failure_reason=reason, upload_id=None, updated_at=func.now())
    )


# The oldest exports past their expiry that still hold something (a zip, an open upload, a state
# other than EXPIRED), locked and skipped by other sweepers.
_EXPIRING = text(
    f"""
    SELECT id, object_key, upload_id FROM {exports.fullname}
    WHERE expire_at <= now() AND state != '{EXPIRED}'
    ORDER BY expire_at LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)


@dataclass(frozen=True)
class StoredZip:
    export_id: int
    object_key: str | None
    upload_id: str | None


async def lock_expiring(session: Session, limit: int) -> list[StoredZip]:
    """Up to `limit` exports past their expiry not yet EXPIRED, locked until the transaction ends."""
    rows = await session.execute(_EXPIRING, {"limit": limit})
    return [StoredZip(r.id, r.object_key, r.upload_id) for r in rows]


async def mark_expired(session: Session, export_ids: list[int]) -> None:
    await session.execute(
        update(exports)
        .where(exports.c.id.in_(export_ids))
        .values(state=EXPIRED, object_key=None, upload_id=None, updated_at=func.now())
    )


async def lock_of_user(session: Session, user_id: int) -> list[StoredZip]:
    """Every export of the user, locked until the transaction ends (erasure)."""
    rows = await session.execute(
        select(exports.c.id, exports.c.object_key, exports.c.upload_id)
        .where(exports.c.user_id == user_id)
        .with_for_update()
    )
    return [StoredZip(r.id, r.object_key, r.upload_id) for r in rows]


async def delete_of_user(session: Session, user_id: int) -> int:
    """Deletes every export row of the user; how many."""
    result = await session.execute(delete(exports).where(exports.c.user_id == user_id).returning(exports.c.id))
    return len(result.all())
