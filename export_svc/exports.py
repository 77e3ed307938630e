"""The rules of export requests: creating one (idempotent, one in progress at a time, a daily limit)
and reading one back with a fresh download URL. Only the owner ever sees an export: another user's
is NOT_FOUND, as if it did not exist.

States are decided on read as well: an export past its `expire_at` is EXPIRED (no URL) whether or
not the sweeper has deleted its zip yet.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace

from export_svc import repository as repo
from export_svc.models import EXPIRED, READY
from export_svc.repository import ExportRecord
from export_svc.storage import ExportStore
from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.errors import NotFound, ResourceExhausted, invalid_field
from mesh.ids import IdGenerator
from mesh.outbox import Outbox

REQUEST_ID_MAX = 128
# The daily limit's window.
LIMIT_WINDOW = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Download:
    url: str
    expires_at: dt.datetime


def export_not_found(export_id: int) -> NotFound:
    return NotFound(f"export {export_id} does not exist", reason="EXPORT_NOT_FOUND")


class ExportService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        ids: IdGenerator,
        store: ExportStore,
        *,
        lifetime: dt.timedelta,
        download_lifetime: dt.timedelta,
        per_day: int,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._ids = ids
        self._store = store
        self._lifetime = lifetime
        self._download_lifetime = download_lifetime
        self._per_day = per_day

    async def create(self, user_id: int, request_id: str) -> ExportRecord:
        """The user's export for `request_id`: the one made earlier with it, else the one in progress,
        else a new PENDING export whose `exports.requested` commits with it. INVALID_ARGUMENT
        (request_id) above 128 characters; RESOURCE_EXHAUSTED (EXPORT_LIMIT) when the user already
        requested `per_day` exports (failed ones not counted) in the last 24 hours: its message and
        its ErrorInfo metadata `retry_after_time` (RFC 3339) say when the next one may be asked."""
        if len(request_id) > REQUEST_ID_MAX:
            raise invalid_field("request_id", f"must be at most {REQUEST_ID_MAX} characters")
        # Without a key, a key of our own: the request is simply not idempotent by key.
        request_id = request_id or f"auto-{uuid.uuid4()}"
        # A concurrent request can win the one-in-progress slot between our read and our insert;
        # the second pass then finds it.
        for _ in range(3):
            async with self._db.unit_of_work() as session:
                existing = await repo.by_request(session, user_id, request_id) or await repo.in_progress(
                    session, user_id
                )
                if existing is not None:
                    return existing
                now = dt.datetime.now(dt.UTC)
                count, oldest = await repo.requested_since(session, user_id, now - LIMIT_WINDOW)
                if count >= self._per_day and oldest is not None:
                    again = (oldest + LIMIT_WINDOW).replace(microsecond=0).isoformat().replace("+00:00", "Z")
                    raise ResourceExhausted(
                        f"you can request at most {self._per_day} exports in 24 hours; download your latest "
                        f"one, or request a new one after {again}",
                        reason="EXPORT_LIMIT",
                        metadata={"retry_after_time": again},
                    )
                export_id = self._ids.next_id()
                if await repo.insert_export(session, export_id, user_id, request_id, now, now + self._lifetime):
                    await self._outbox.add(session, events_pb2.ExportRequested(export_id=export_id, user_id=user_id))
                    created = await repo.get_export(session, export_id)
                    assert created is not None
                    return created
        raise RuntimeError("export request kept racing with another; unreachable in practice")

    async def get(self, user_id: int, export_id: int) -> tuple[ExportRecord, Download | None]:
        """The user's export (EXPIRED once past its expiry, whatever the row says) and, when READY, a
        signed download URL working for `download_lifetime` (never past the expiry). INVALID_ARGUMENT
        (export_id) for an impossible id; NOT_FOUND (EXPORT_NOT_FOUND) for an id that is not one of
        the user's exports."""
        if export_id <= 0:
            raise invalid_field("export_id", "must be an export id (a positive integer)")
        async with self._db.read_only() as session:
            record = await repo.get_export(session, export_id)
        if record is None or record.user_id != user_id:
            raise export_not_found(export_id)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if record.expire_at <= now:
            return replace(record, state=EXPIRED), None
        if record.state != READY or record.object_key is None:
            return record, None
        # Whole seconds (S3 presigns in seconds), at least one.
        expires_at = min(now + self._download_lifetime, record.expire_at.replace(microsecond=0))
        lifetime = max(expires_at - now, dt.timedelta(seconds=1))
        url = self._store.presign_download(record.object_key, lifetime, f"glimpse-export-{record.id}.zip")
        return record, Download(url, now + lifetime)
