"""An index of every post of an author, live or deleted: what a user's erasure (post_svc.erasure)
reads by (`posts_by_author` holds live posts only).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "posts"


def upgrade() -> None:
    op.create_index("posts_of_author", "posts", ["author_id", "id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("posts_of_author", table_name="posts", schema=SCHEMA)
