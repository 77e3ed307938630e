"""Typo-tolerant user search: the pg_trgm and fuzzystrmatch extensions (both in PostgreSQL's contrib,
shipped with every PostgreSQL package and image), trigram indexes on usernames and display names, and
`graph.user_search_candidates`, which finds the users a query may match.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "graph"

# The candidates of a search (graph_svc.repository.search_users ranks them): the exact username and
# the usernames starting with the query (a range of the username's btree: usernames are [a-z0-9._],
# "C"-collated, and '~' sorts above each of those characters), usernames whose trigram similarity
# reaches 0.18, and display names with a word whose similarity reaches 0.5 (the two GIN indexes).
# 0.18 is low enough for two typos in a short name: a transposition in 5 characters ("rede0" for
# "reed0") keeps 2 of 10 distinct trigrams, 0.2. pg_trgm reads its thresholds from settings; the
# function's SET clauses fix them for its own statements only, whatever the connection (a pooled
# one, autocommit, a transaction-mode pooler) has set.
CANDIDATES = """
CREATE OR REPLACE FUNCTION graph.user_search_candidates(query text) RETURNS SETOF bigint
LANGUAGE sql STABLE PARALLEL SAFE
-- What a search finds is tens of users, not the default estimate of 1000: the ranking query then
-- reads each candidate by primary key instead of scanning the table.
ROWS 50
SET pg_trgm.similarity_threshold = 0.18
SET pg_trgm.word_similarity_threshold = 0.5
AS $$
    SELECT id FROM graph.users WHERE username >= query AND username < query || '~'
    UNION
    SELECT id FROM graph.users WHERE username % query
    UNION
    SELECT id FROM graph.users WHERE display_name %> query
$$
"""


def upgrade() -> None:
    # In `public`, on every search path: the extensions belong to the database, not to one schema,
    # and another service may use them too. Creating one needs a superuser or, for these two (trusted
    # extensions), the database's owner.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch WITH SCHEMA public")
    for column in ("username", "display_name"):
        op.create_index(
            f"users_{column}_trgm",
            "users",
            [column],
            schema=SCHEMA,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    op.execute(CANDIDATES)


def downgrade() -> None:
    op.execute("DROP FUNCTION graph.user_search_candidates(text)")
    op.drop_index("users_display_name_trgm", "users", schema=SCHEMA)
    op.drop_index("users_username_trgm", "users", schema=SCHEMA)
    # The extensions stay: something else in the database may use them.
