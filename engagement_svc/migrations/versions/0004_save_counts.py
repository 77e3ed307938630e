"""Each post's saves counted in `post_counters` beside its likes and comments (the ranked feed's
saves term, feed_svc.ranking), backfilled from the saves table.

The backfill holds the saves table in SHARE mode (writes wait; reads do not), so the count it
writes equals the rows when it commits. A post's saves go to its shard 0 row (created if the post
had no counters yet); a deleted post has no saves left to count.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "engagement"


def upgrade() -> None:
    op.add_column(
        "post_counters", sa.Column("saves", sa.BigInteger(), nullable=False, server_default="0"), schema=SCHEMA
    )
    op.execute(f"LOCK TABLE {SCHEMA}.saves IN SHARE MODE")
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.post_counters AS c (post_id, shard, likes, comments, saves)
        SELECT s.post_id, 0, 0, 0, count(*)
          FROM {SCHEMA}.saves AS s
         WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.deleted_posts AS d WHERE d.post_id = s.post_id)
         GROUP BY s.post_id
         ORDER BY s.post_id
        ON CONFLICT (post_id, shard) DO UPDATE SET saves = EXCLUDED.saves
        """
    )


def downgrade() -> None:
    op.drop_column("post_counters", "saves", schema=SCHEMA)
