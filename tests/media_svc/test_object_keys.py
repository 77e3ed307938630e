"""The key layout, defined once: the Python and the SQL spellings build the same keys."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from media_svc.object_keys import raw_key, raw_key_sql, rendition_key, rendition_key_sql


def test_the_sql_spelling_builds_the_same_keys(database_url):
    """Bulk loads (bench/feed_data.py) make keys in SQL from the same layout."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT {raw_key_sql('o', 'm')}, {rendition_key_sql('o', 'm', 640)}"
                    " FROM (VALUES (506085774953809920, 506085775171912704)) AS v(o, m)"
                )
            ).one()
    finally:
        engine.dispose()
    owner, media_id = 506085774953809920, 506085775171912704
    assert tuple(row) == (raw_key(owner, media_id), rendition_key(owner, media_id, 640))
