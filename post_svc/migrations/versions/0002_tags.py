"""Hashtags: the tag index (`post_tags`) and each tag's exact post count (`tags`), backfilled from the
posts that exist.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from usertext import parse_hashtags

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "posts"
# Posts read, re-parsed and indexed per statement of the backfill.
BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "post_tags",
        sa.Column("tag", sa.Text(collation="C"), primary_key=True),
        sa.Column("post_id", sa.BigInteger, primary_key=True),
        schema=SCHEMA,
    )
    op.create_table(
        "tags",
        sa.Column("name", sa.Text(collation="C"), primary_key=True),
        sa.Column("post_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False, unique=True),
        sa.CheckConstraint("post_count >= 0", name="post_count_not_negative"),
        schema=SCHEMA,
    )
    _backfill()


def _backfill() -> None:
    """Indexes every live post under the hashtags its caption has by today's rule (usertext), storing
    them in `posts.hashtags` where they differ: posts written before the one normalisation hold tags
    cut or cased the old way ("#हिन्दी" as "ह", a decomposed "café" as "cafe"). Then counts each tag,
    its id in order of first use. Runs in the migration's transaction: all of it or nothing."""
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, caption, hashtags FROM posts.posts WHERE state = 1 AND id > :after ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": BATCH},
        ).all()
        if not rows:
            break
        after = rows[-1].id
        tags_of = {row.id: parse_hashtags(row.caption) for row in rows}
        changed = [{"id": row.id, "tags": tags_of[row.id]} for row in rows if tags_of[row.id] != list(row.hashtags)]
        if changed:
            conn.execute(sa.text("UPDATE posts.posts SET hashtags = :tags WHERE id = :id"), changed)
        pairs = [(tag, post_id) for post_id, tags in tags_of.items() for tag in tags]
        if pairs:
            conn.execute(
                sa.text(
                    "INSERT INTO posts.post_tags (tag, post_id) "
                    "SELECT * FROM unnest(CAST(:tags AS text[]), CAST(:ids AS bigint[]))"
                ),
                {"tags": [tag for tag, _ in pairs], "ids": [post_id for _, post_id in pairs]},
            )
    conn.execute(
        sa.text(
            "INSERT INTO posts.tags (name, post_count) "
            "SELECT tag, count(*) FROM posts.post_tags GROUP BY tag ORDER BY min(post_id)"
        )
    )


def downgrade() -> None:
    op.drop_table("tags", schema=SCHEMA)
    op.drop_table("post_tags", schema=SCHEMA)
