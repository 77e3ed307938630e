"""The rules of reports: a user reports a post, a comment or a user with a reason from a fixed list,
keeping a snapshot of the content as they saw it (so deleting the content destroys no evidence);
operators list, read and resolve them (ModerationService, behind graph_svc.moderation).

The enums travel as their stored words (graph_svc.models.REPORT_*): "post", "spam", "open"...

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import json
from typing import Any

from graph_svc import report_repository as report_repo
from graph_svc.erasure import require_caller
from graph_svc.models import (
    REPORT_OPEN,
    REPORT_REASONS,
    REPORT_RESOLUTIONS,
    REPORT_STATES,
    REPORT_SUBJECT_TYPES,
)
from graph_svc.report_repository import NewReport, ReportRecord
from mesh.db import Database
from mesh.errors import FailedPrecondition, NotFound, invalid_field
from mesh.ids import IdGenerator
from mesh.pagination import Id, Page, PageCursor, decode_cursor, page_of, page_size

MAX_DETAILS = 1000
MAX_NOTE = 2000
# A rendered post (caption, media, counts) is a few KiB; a comment or a profile less.
MAX_SNAPSHOT_BYTES = 64 * 1024


class ReportCursor(PageCursor):
    """A page of reports starts after this report id (oldest first)."""

    id: Id


class ReportService:
    def __init__(self, *, db: Database, ids: IdGenerator) -> None:
        self._db = db
        self._ids = ids

    async def create(
        self,
        reporter_id: int,
        *,
        subject_type: str,
        subject_id: int,
        reported_user_id: int,
        reason: str,
        details: str,
        snapshot: dict[str, Any],
    ) -> ReportRecord:
        """Stores an open report with its snapshot; if the reporter already has an open report of the
        same subject, answers that one unchanged (so a retry or a double tap files one report).

        INVALID_ARGUMENT naming the field for an unknown subject type or reason, an id that is not
        positive, details over MAX_DETAILS characters, or a snapshot that is empty or over
        MAX_SNAPSHOT_BYTES as JSON. UNAUTHENTICATED (ACCOUNT_GONE) if the reporter's account is deleted.
        """
        if subject_type not in REPORT_SUBJECT_TYPES:
            raise invalid_field("subject_type", f"must be one of {', '.join(REPORT_SUBJECT_TYPES)}")
        if subject_id <= 0:
            raise invalid_field("subject_id", f"must be a {subject_type} id")
        if reported_user_id <= 0:
            raise invalid_field("reported_user_id", "must be a user id")
        if reason not in REPORT_REASONS:
            raise invalid_field("reason", f"must be one of {', '.join(REPORT_REASONS)}")
        details = details.strip()
        if len(details) > MAX_DETAILS:
            raise invalid_field("details", f"must be at most {MAX_DETAILS} characters")
        if not snapshot:
            raise invalid_field("snapshot", "must hold the reported content as the reporter saw it")
        if len(json.dumps(snapshot, separators=(",", ":")).encode()) > MAX_SNAPSHOT_BYTES:
            raise invalid_field("snapshot", f"must be at most {MAX_SNAPSHOT_BYTES // 1024} KiB as JSON")
        record = NewReport(
            id=self._ids.next_id(),
            reporter_id=reporter_id,
            subject_type=subject_type,
            subject_id=subject_id,
            reported_user_id=reported_user_id,
            reason=reason,
            details=details,
            snapshot=snapshot,
        )
        async with self._db.unit_of_work() as session:
            await require_caller(session, reporter_id)
            return await report_repo.insert_open_report(session, record)

    async def list_reports(self, state: str | None, size: int, token: str) -> Page[ReportRecord]:
        """Reports in `state` (None: all), oldest first. INVALID_ARGUMENT for an unknown state or a bad
        page size or token."""
        if state is not None and state not in REPORT_STATES:
            raise invalid_field("state", f"must be one of {', '.join(REPORT_STATES)}, or unspecified for all")
        limit = page_size(size)
        scope = f"reports:{state or 'all'}"
        cursor = decode_cursor(token, ReportCursor, scope)
        async with self._db.read_only() as session:
            found = await report_repo.list_reports(session, state, cursor.id if cursor else 0, limit + 1)
        return page_of(found, limit, scope, lambda r: ReportCursor(id=r.id))

    async def get(self, report_id: int) -> ReportRecord:
        """The report; NOT_FOUND (REPORT_NOT_FOUND) if there is none."""
        async with self._db.read_only() as session:
            report = await report_repo.get_report(session, report_id)
        if report is None:
            raise _no_such_report(report_id)
        return report

    async def resolve(self, report_id: int, resolution: str, note: str) -> ReportRecord:
        """Resolves an open report with `resolution` and `note`; returns it. Resolving a resolved
        report again with the same resolution and note answers it unchanged.

        INVALID_ARGUMENT for an unknown resolution or a note over MAX_NOTE characters; NOT_FOUND
        (REPORT_NOT_FOUND); FAILED_PRECONDITION (REPORT_ALREADY_RESOLVED) for another resolution or
        note on a resolved report.
        """
        if resolution not in REPORT_RESOLUTIONS:
            raise invalid_field("resolution", f"must be one of {', '.join(REPORT_RESOLUTIONS)}")
        note = note.strip()
        if len(note) > MAX_NOTE:
            raise invalid_field("note", f"must be at most {MAX_NOTE} characters")
        async with self._db.unit_of_work() as session:
            report = await report_repo.get_report(session, report_id, for_update=True)
            if report is None:
                raise _no_such_report(report_id)
            if report.state == REPORT_OPEN:
                return await report_repo.resolve_report(session, report_id, resolution, note)
        if (report.resolution, report.resolution_note) != (resolution, note):
            raise FailedPrecondition(
                f"report {report_id} was already resolved as {report.resolution}",
                reason="REPORT_ALREADY_RESOLVED",
            )
        return report


def _no_such_report(report_id: int) -> NotFound:
    return NotFound(f"report {report_id} does not exist", reason="REPORT_NOT_FOUND")
