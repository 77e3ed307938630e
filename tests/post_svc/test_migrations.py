"""post_svc's migrations on data: revision 0002 indexes the posts that exist under the hashtags their
captions have by today's rule, and counts them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

import post_svc
from mesh.migrate import drop_database, ensure_database, upgrade
from tests.conftest import fresh_database_url


@pytest.fixture
def engine_at_0001() -> Iterator[Engine]:
    """A fresh database whose posts schema is at revision 0001 (before tags)."""
    url = fresh_database_url(f"tags_{uuid.uuid4().hex[:6]}")
    ensure_database(url)
    config = Config()
    config.set_main_option("script_location", str(Path(post_svc.__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "0001")
    engine = create_engine(url)
    yield engine
    engine.dispose()
    drop_database(url)


def test_0002_backfills_the_tags_of_existing_posts_by_today_s_rule(engine_at_0001: Engine):
    posts = [
        # (id, caption, hashtags as stored before the one normalisation, state): a cut Devanagari tag,
        # a decomposed café stored without its accent, a deleted post.
        (1, "Chai #हिन्दी at the #cafe\u0301", ["ह", "cafe"], 1),
        (2, "#Café again, #CAFÉ", ["café"], 1),
        (3, "#café deleted", ["café"], 2),
        (4, "no tags", [], 1),
    ]
    with engine_at_0001.begin() as conn:
        for post_id, caption, hashtags, state in posts:
            conn.execute(
                text(
                    "INSERT INTO posts.posts (id, author_id, caption, hashtags, media_ids, state) "
                    "VALUES (:id, 7, :caption, :hashtags, ARRAY[1]::bigint[], :state)"
                ),
                {"id": post_id, "caption": caption, "hashtags": hashtags, "state": state},
            )
    upgrade(engine_at_0001.url.render_as_string(hide_password=False), "post_svc")
    with engine_at_0001.connect() as conn:
        hashtags = dict(conn.execute(text("SELECT id, hashtags FROM posts.posts ORDER BY id")).all())
        index = conn.execute(text("SELECT tag, post_id FROM posts.post_tags ORDER BY tag, post_id")).all()
        counts = conn.execute(text("SELECT name, post_count FROM posts.tags ORDER BY id")).all()
    assert hashtags == {1: ["हिन्दी", "café"], 2: ["café"], 3: ["café"], 4: []}
    assert sorted(index) == sorted([("हिन्दी", 1), ("café", 1), ("café", 2)])
    # The deleted post is neither indexed nor counted (nor re-read).
    assert sorted(counts) == sorted([("café", 2), ("हिन्दी", 1)])
