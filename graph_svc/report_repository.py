"""SQL of reports. Every function runs inside the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from graph_svc.models import REPORT_OPEN, REPORT_RESOLVED, reports
from mesh.db import Session


@dataclass(frozen=True)
class ReportRecord:
    """A report; the enums in their stored words (graph_svc.models.REPORT_*)."""

    id: int
    # None once the reporter's account is deleted (graph_svc.erasure).
    reporter_id: int | None
    subject_type: str
    subject_id: int
    reported_user_id: int
    reason: str
    details: str
    snapshot: dict[str, Any]
    state: str
    resolution: str | None
    resolution_note: str
    created_at: dt.datetime
    resolved_at: dt.datetime | None


@dataclass(frozen=True)
class NewReport:
    id: int
    reporter_id: int
    subject_type: str
    subject_id: int
    reported_user_id: int
    reason: str
    details: str
    snapshot: dict[str, Any]


_COLUMNS = [reports.c[name] for name in ReportRecord.__dataclass_fields__]


async def insert_open_report(session: Session, record: NewReport) -> ReportRecord:
    """Stores `record` as an open report unless its reporter has an open report of the same subject;
    returns the stored report, or that open one unchanged."""
    values = {name: getattr(record, name) for name in NewReport.__dataclass_fields__}
    inserted = await session.execute(
        insert(reports)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[reports.c.reporter_id, reports.c.subject_type, reports.c.subject_id],
            # Spelled out: a bound parameter here stops PostgreSQL from matching the partial index
            # once psycopg prepares the statement (its fifth run).
            index_where=text(f"state = '{REPORT_OPEN}'"),
        )
        .returning(*_COLUMNS)
    )
    row = inserted.one_or_none()
    if row is None:
        row = (
            await session.execute(
                select(*_COLUMNS).where(
                    reports.c.reporter_id == record.reporter_id,
                    reports.c.subject_type == record.subject_type,
                    reports.c.subject_id == record.subject_id,
                    reports.c.state == REPORT_OPEN,
                )
            )
        ).one()
    return ReportRecord(**row._mapping)


async def get_report(session: Session, report_id: int, *, for_update: bool = False) -> ReportRecord | None:
    query = select(*_COLUMNS).where(reports.c.id == report_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    return ReportRecord(**row._mapping) if row else None


async def list_reports(session: Session, state: str | None, after_id: int, limit: int) -> list[ReportRecord]:
    """Reports (in `state`, or all), oldest first, with ids above `after_id` (reports_by_state for a
    state, the primary key otherwise)."""
    query = select(*_COLUMNS).where(reports.c.id > after_id)
    if state is not None:
        query = query.where(reports.c.state == state)
    rows = await session.execute(query.order_by(reports.c.id).limit(limit))
    return [ReportRecord(**row._mapping) for row in rows]


async def resolve_report(session: Session, report_id: int, resolution: str, note: str) -> ReportRecord:
    """Marks the (locked) report resolved now; returns it."""
    row = (
        await session.execute(
            update(reports)
            .where(reports.c.id == report_id)
            .values(state=REPORT_RESOLVED, resolution=resolution, resolution_note=note, resolved_at=func.now())
            .returning(*_COLUMNS)
        )
    ).one()
    return ReportRecord(**row._mapping)
