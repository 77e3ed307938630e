"""Transactional outbox: an event is written in the same transaction as the change it describes,
and a relay publishes it to JetStream afterwards.

Crash safety: the relay publishes with `Nats-Msg-Id` = event id, and the transaction that marks rows
sent commits only after the stream acknowledged them. If it dies in between, the rows are published
again on restart and the stream drops the repeats (its duplicate window), so each event is stored
exactly once.

One bad row cannot stall the flow: a row whose subject no registered event uses (written by an older
or newer release), or that the server refuses for good (too large), is parked: copied with its
reason to "deadletter.outbox.<schema>" (the DEADLETTER stream keeps it for a week), marked done,
logged and counted, and the rows behind it flow on. Transient failures (NATS reconnecting, a
leader election, the database restarting) pause the relay with backoff and lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import nats.errors
from google.protobuf.message import Message
from prometheus_client import Counter
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)

from mesh.bus import Bus
from mesh.db import OUTBOX_WRITTEN, Database, Session, Statement
from mesh.errors import Unavailable
from mesh.events import by_subject, dead_letter_subject, event_type
from mesh.ids import IdGenerator

log = logging.getLogger("mesh.outbox")

_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 5.0
# A parked payload larger than this is not copied to the dead-letter stream (it stays in its row).
_DEAD_LETTER_COPY_MAX = 512 * 1024
_TRANSIENT = (TimeoutError, ConnectionError, Unavailable, nats.errors.Error)

RELAYED = Counter("glimpse_outbox_relayed_total", "Outbox events published to JetStream.", ["schema"])
PARKED = Counter("glimpse_outbox_parked_total", "Outbox rows parked instead of published.", ["schema"])
# Refusals that will not change on a retry (the payload is over the server's limit).
_PERMANENT = (nats.errors.MaxPayloadError,)


def outbox_table(metadata: MetaData) -> Table:
    """The `outbox` table in the schema of `metadata` (each owning service has its own). This is the
    one definition: migrations create it from here (`mesh.migrate.create_outbox_table`)."""
    table = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("subject", Text, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Set when the stream stored the event, or when the row was parked (dead-lettered).
        Column("published_at", DateTime(timezone=True)),
    )
    Index("outbox_unpublished", table.c.id, postgresql_where=table.c.published_at.is_(None))
    return table


class Outbox:
    """Writes events into the caller's unit of work."""

    def __init__(self, table: Table, ids: IdGenerator) -> None:
        self._table = table
        self._ids = ids
        self._insert = Statement(
            table.insert().values(id=bindparam("id"), subject=bindparam("subject"), payload=bindparam("payload"))
        )
        self._insert_many = Statement(text(insert_rows_sql(table)))

    async def add(self, session: Session, event: Message) -> int:
        """Stamps `event` with a new event id and time and stores it for publishing on its registered
        subject (mesh.events); returns the event id. LookupError for a message that is not a
        registered event (a programming error, caught by tests)."""
        subject = event_type(event).subject
        event_id = self._ids.next_id()
        event.event_id = event_id  # type: ignore[attr-defined]
        event.occur_time.GetCurrentTime()  # type: ignore[attr-defined]
        await session.execute(self._insert, {"id": event_id, "subject": subject, "payload": event.SerializeToString()})
        session.info[OUTBOX_WRITTEN] = True
        return event_id

    async def add_many(self, session: Session, events: Sequence[Message]) -> list[int]:
        """`add` for several events in one statement (one round trip); their event ids, in order.
        LookupError as `add`, before anything is written."""
        if not events:
            return []
        rows = self.stage(session, events)
        await session.execute(self._insert_many, rows)
        return list(rows["event_ids"])

    def stage(self, session: Session, events: Sequence[Message]) -> dict[str, list[Any]]:
        """Stamps `events` as `add` does and returns their rows as the parameters of `insert_rows_sql`
        (event_ids, event_subjects, event_payloads; empty lists for no events), for a statement of
        the caller's that writes them in this unit of work together with the change they describe.
        LookupError as `add`."""
        subjects = [event_type(event).subject for event in events]
        ids, payloads = [], []
        for event in events:
            event_id = self._ids.next_id()
            event.event_id = event_id  # type: ignore[attr-defined]
            event.occur_time.GetCurrentTime()  # type: ignore[attr-defined]
            ids.append(event_id)
            payloads.append(event.SerializeToString())
        if events:
            session.info[OUTBOX_WRITTEN] = True
        return {"event_ids": ids, "event_subjects": subjects, "event_payloads": payloads}


def insert_rows_sql(table: Table) -> str:
    """SQL text that inserts into the outbox `table` the rows `Outbox.stage` returned (its keys are
    the `:name` parameters): alone, or as a WITH clause of a statement that also writes the change."""
    return (
        f"INSERT INTO {table.fullname} (id, subject, payload) SELECT * FROM unnest(CAST(:event_ids AS bigint[]), "
        "CAST(:event_subjects AS text[]), CAST(:event_payloads AS bytea[]))"
    )


class OutboxRelay:
    """Publishes unsent outbox rows in id order. Several relays may run: rows are claimed with
    SKIP LOCKED, so each batch is owned by one of them."""

    def __init__(
        self,
        db: Database,
        table: Table,
        bus: Bus,
        *,
        batch_size: int = 200,
        idle_seconds: float = 0.5,
        keep_published: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        self._db = db
        self._table = table
        self._bus = bus
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._keep_published = keep_published
        self._wake = asyncio.Event()
        db.on_outbox_commit(self._wake.set)
        t = table
        # Claims a batch and marks it sent in one statement: the mark commits only if every row of
        # the batch was published or parked (publish_pending), else it rolls back with the claim.
        claimed = (
            select(t.c.id)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
        self._claim = Statement(
            update(t)
            .where(t.c.id.in_(claimed))
            .values(published_at=func.now())
            .returning(t.c.id, t.c.subject, t.c.payload)
        )

    async def run(self) -> None:
        """Relays until cancelled; wakes on local commits and polls for other processes' rows."""
        log.info("outbox relay started", extra={"schema": self._table.schema})
        rounds = 0
        backoff = _BACKOFF_MIN
        while True:
            try:
                published = await self.publish_pending()
            except _TRANSIENT as exc:
                # A NATS leader election or a database restart: the batch was rolled back, and what
                # was already published is dropped as a duplicate when it is sent again.
                log.warning("outbox relay paused", extra={"error": f"{type(exc).__name__}: {exc}", "retry_in": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            backoff = _BACKOFF_MIN
            rounds += 1
            if rounds % 1000 == 0:
                await self.prune()
            if published < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_seconds)

    async def publish_pending(self) -> int:
        """Publishes one batch of unsent rows and marks them sent; returns how many. The batch's
        publishes are sent together, in id order, and their acknowledgements awaited together (one
        round trip to the stream per batch, not per row); after a transient failure the whole batch
        is sent again, so a row published before a failed one may be stored before it."""
        t = self._table
        async with self._db.unit_of_work() as session:
            rows = sorted((await session.execute(self._claim, {"limit": self._batch_size})).all())
            known = [row for row in rows if by_subject(row.subject)]
            outcomes = await asyncio.gather(
                *(self._bus.publish(row.subject, row.payload, msg_id=str(row.id)) for row in known),
                return_exceptions=True,
            )
            failed = {row.id: outcome for row, outcome in zip(known, outcomes, strict=True) if outcome is not None}
            for outcome in failed.values():
                if not isinstance(outcome, _PERMANENT):
                    raise outcome
            published: list[int] = []
            for row in rows:
                if row.id in failed:
                    problem: str | None = f"{type(failed[row.id]).__name__}: {failed[row.id]}"
                elif by_subject(row.subject):
                    problem = None
                else:
                    problem = f"no registered event uses subject {row.subject!r}"
                if problem is None:
                    published.append(row.id)
                else:
                    await self._park(row.id, row.subject, row.payload, problem)
        if published:
            RELAYED.labels(t.schema or "public").inc(len(published))
        return len(rows)

    async def _park(self, row_id: int, subject: str, payload: bytes, reason: str) -> None:
        """Copies one claimed row (marked done by its claim) with its reason to the dead-letter stream."""
        schema = self._table.schema or "public"
        log.error("outbox row parked", extra={"schema": schema, "id": row_id, "subject": subject, "error": reason})
        PARKED.labels(schema).inc()
        copy = payload if len(payload) <= _DEAD_LETTER_COPY_MAX else b""
        await self._bus.publish(
            dead_letter_subject("outbox", schema),
            copy,
            msg_id=f"parked-{schema}-{row_id}",
            headers={"Glimpse-Original-Subject": subject, "Glimpse-Error": reason[:1000]},
        )

    async def prune(self) -> None:
        """Deletes rows published longer ago than `keep_published` (kept meanwhile for debugging)."""
        t = self._table
        cutoff = dt.datetime.now(dt.UTC) - self._keep_published
        async with self._db.unit_of_work() as session:
            await session.execute(delete(t).where(t.c.published_at < cutoff))
