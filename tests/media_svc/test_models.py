"""The media status vocabulary: declared once (models.MediaStatus), and the wire enum and the
migrated table agree with it."""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text

from glimpse.media.v1 import media_pb2
from media_svc.models import MediaStatus


def test_every_status_has_its_wire_value_and_no_wire_value_is_unknown():
    wire = set(media_pb2.MediaStatus.keys()) - {"MEDIA_STATUS_UNSPECIFIED"}
    assert wire == {f"MEDIA_STATUS_{status.value}" for status in MediaStatus}


def test_the_migrated_table_accepts_exactly_the_vocabulary(database_url):
    """`alembic check` does not compare check constraints: a new status needs a migration, and this says so."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            definition = conn.execute(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conname = 'known_status' AND conrelid = 'media.media'::regclass"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert set(re.findall(r"'([A-Z_]+)'", definition)) == {status.value for status in MediaStatus}
