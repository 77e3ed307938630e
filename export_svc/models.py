"""Tables of the `exports` schema.

One row per export job. `state` is the export's life (EXPORT_STATES); `upload_id` is the multipart
upload a build has open, written before its first part is sent, so a build that died (kill -9) is
found and its upload aborted by the next attempt instead of being left in the bucket. The zip lives
under `object_key` (exports/{user_id}/{export_id}.zip) from READY until the sweeper expires it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from mesh.outbox import outbox_table

metadata = MetaData(schema="exports")

# The one spelling of an export's states (the table's check, the SQL, and the servicer's mapping to
# glimpse.export.v1.ExportState, whose names are "EXPORT_STATE_" + these).
PENDING, RUNNING, READY, FAILED, EXPIRED = "PENDING", "RUNNING", "READY", "FAILED", "EXPIRED"
EXPORT_STATES = (PENDING, RUNNING, READY, FAILED, EXPIRED)
# States in which a build is still to come or under way: a new request returns that export.
IN_PROGRESS = (PENDING, RUNNING)

exports = Table(
    "exports",
    metadata,
    # Time-ordered ids.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    # The client's idempotency key (AIP-155): a repeated request returns this export.
    Column("request_id", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("failure_reason", Text),
    Column("object_key", Text),
    Column("upload_id", Text),
    Column("size_bytes", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expire_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(f"state IN ({', '.join(repr(s) for s in EXPORT_STATES)})", name="exports_state_known"),
    UniqueConstraint("user_id", "request_id", name="exports_request_once"),
)
# A user's exports, newest first (the daily limit, the one in progress, erasure).
Index("exports_by_user", exports.c.user_id, exports.c.created_at.desc())
# At most one export in progress per user: a second request finds it (and concurrent requests race
# on this index instead of both starting a build).
Index(
    "exports_one_in_progress",
    exports.c.user_id,
    unique=True,
    postgresql_where=exports.c.state.in_(IN_PROGRESS),
)
# The sweeper's oldest-expiring-first batches of exports that still hold something to delete.
Index("exports_by_expiry", exports.c.expire_at, postgresql_where=exports.c.state != EXPIRED)

outbox = outbox_table(metadata)
