"""An index of the views a user made: what a user's erasure (story_svc.erasure) reads by.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "stories"


def upgrade() -> None:
    op.create_index("story_views_by_viewer", "story_views", ["viewer_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("story_views_by_viewer", table_name="story_views", schema=SCHEMA)
