"""engagement_svc's migrations on data: revision 0004 counts the saves that exist in each post's
counters (beside its likes and comments, created when a post had none), leaving deleted posts out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

import engagement_svc
from mesh.migrate import drop_database, ensure_database, upgrade
from tests.conftest import fresh_database_url


@pytest.fixture
def engine_at_0003() -> Iterator[Engine]:
    """A fresh database whose engagement schema is at revision 0003 (before save counts)."""
    url = fresh_database_url(f"saves_{uuid.uuid4().hex[:6]}")
    ensure_database(url)
    config = Config()
    config.set_main_option("script_location", str(Path(engagement_svc.__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "0003")
    engine = create_engine(url)
    yield engine
    engine.dispose()
    drop_database(url)


def test_0004_backfills_each_post_s_save_count(engine_at_0003: Engine):
    with engine_at_0003.begin() as conn:
        # Post 1: liked, with counters on two shards, saved twice. Post 2: saved once, no counters
        # yet. Post 3: deleted (its saves are gone; a stray one must not be counted). Post 4: nothing.
        conn.execute(
            text(
                "INSERT INTO engagement.post_counters (post_id, shard, likes, comments) "
                "VALUES (1, 0, 3, 1), (1, 5, 2, 0), (4, 2, 1, 0)"
            )
        )
        conn.execute(text("INSERT INTO engagement.saves (user_id, post_id) VALUES (10, 1), (11, 1), (10, 2), (12, 3)"))
        conn.execute(text("INSERT INTO engagement.deleted_posts (post_id) VALUES (3)"))
    upgrade(engine_at_0003.url.render_as_string(hide_password=False), "engagement_svc")
    with engine_at_0003.connect() as conn:
        rows = conn.execute(
            text("SELECT post_id, sum(likes), sum(comments), sum(saves) FROM engagement.post_counters GROUP BY post_id")
        ).all()
    assert sorted(tuple(r) for r in rows) == [(1, 5, 1, 2), (2, 0, 0, 1), (4, 1, 0, 0)]
