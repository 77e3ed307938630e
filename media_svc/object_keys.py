"""Where photo bytes live in the media bucket: the one definition of the key layout.

    u/{owner_id}/raw/{media_id}             the upload, exactly as sent; private, never served
    u/{owner_id}/r/{media_id}/{size}.webp   a rendition; public (CDN) and immutable

Everything that names a key or a set of keys (upload grants, the worker, the sweeper, the bucket's
public-read policy, bulk loads written in SQL) builds it here, so the policy's pattern cannot drift
from the keys it guards.
"""

from __future__ import annotations

_USER = "u"
_RAW = "raw"
_RENDITIONS = "r"
RENDITION_EXTENSION = "webp"

# The keys anyone may read (an S3 policy resource pattern, `*` matching any run of characters,
# `/` included): every rendition and nothing else.
PUBLIC_KEYS = f"{_USER}/*/{_RENDITIONS}/*"


def raw_key(owner_id: int, media_id: int) -> str:
    """Where the uploaded original lives; never served to anyone."""
    return f"{_USER}/{owner_id}/{_RAW}/{media_id}"


def rendition_key(owner_id: int, media_id: int, size: int) -> str:
    """Where a rendition (longest side `size` px) lives; immutable, so caches may keep it forever."""
    return f"{_USER}/{owner_id}/{_RENDITIONS}/{media_id}/{size}.{RENDITION_EXTENSION}"


def raw_key_sql(owner_id: str, media_id: str) -> str:
    """`raw_key` as a PostgreSQL expression over the SQL expressions `owner_id` and `media_id`
    (for bulk loads that make media rows in SQL)."""
    return f"'{_USER}/' || {owner_id} || '/{_RAW}/' || {media_id}"


def rendition_key_sql(owner_id: str, media_id: str, size: int) -> str:
    """`rendition_key` as a PostgreSQL expression (see raw_key_sql)."""
    return f"'{_USER}/' || {owner_id} || '/{_RENDITIONS}/' || {media_id} || '/{int(size)}.{RENDITION_EXTENSION}'"
