"""User search: the trigram threshold follows the query's length (measured by bench/search.py).

Revision 0003 used 0.18 for every query, low enough for two typos in a 5-character name; on 100k
users a 10-character query then rechecked ~2,000 candidate rows (~35 ms) to keep ~40. Two edits
change at most 6 of the n + 1 trigrams of an n-character name, so its similarity to the query stays
at or above (n - 5) / (n + 9): that is the threshold now, between 0.19 (up to 8 characters: "rede0"
still finds "reed0", 0.2) and 0.3 (from 11 characters), and 0.3 for queries of 4 characters or
fewer, which the prefix match serves (at 0.19 one shared trigram of five would make a candidate).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# plpgsql, to set the threshold from the query before the search. set_config(..., true) changes it
# for the rest of the transaction, but a function with SET clauses restores those settings when it
# returns: the statement that called it, and the connection, keep what they had.
CANDIDATES = """
CREATE OR REPLACE FUNCTION graph.user_search_candidates(query text) RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE
SET pg_trgm.similarity_threshold = 0.3
SET pg_trgm.word_similarity_threshold = 0.5
ROWS 50
AS $$
BEGIN
    IF length(query) > 4 THEN
        PERFORM set_config(
            'pg_trgm.similarity_threshold',
            greatest(0.19, least(0.3, (length(query) - 5)::numeric / (length(query) + 9)))::text,
            true
        );
    END IF;
    RETURN QUERY
        SELECT id FROM graph.users WHERE username >= query AND username < query || '~'
        UNION
        SELECT id FROM graph.users WHERE username % query
        UNION
        SELECT id FROM graph.users WHERE display_name %> query;
END
$$
"""

# Revision 0003's function, for the downgrade.
PREVIOUS = """
CREATE OR REPLACE FUNCTION graph.user_search_candidates(query text) RETURNS SETOF bigint
LANGUAGE sql STABLE PARALLEL SAFE
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
    op.execute(CANDIDATES)


def downgrade() -> None:
    op.execute(PREVIOUS)
