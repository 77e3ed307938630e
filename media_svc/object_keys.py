"""Where photo bytes live in the media bucket: the one definition of the key layout.

    u/{owner_id}/raw/{media_id}                 the upload, exactly as sent; never served
    u/{owner_id}/r/{media_id}/{size}.webp       a rendition; immutable, served only through signed,
                                                time-limited URLs (media_svc.rendition_urls)
    avatars/{owner_id}/{media_id}/{size}.webp   a profile picture's square rendition; immutable
                                                (a new picture is a new media id), public

Only the avatars prefix is readable without a signature (the bucket policy of
storage.ObjectStore.ensure_bucket): profile pictures are public, as on Instagram, even for private
accounts, and served without a media_svc call per user shown. Everything else needs a signature.
Everything that names a key (upload grants, the worker, the sweeper, the signed URLs, bulk loads
written in SQL) builds it here.
"""

from __future__ import annotations

_USER = "u"
_RAW = "raw"
_RENDITIONS = "r"
RENDITION_EXTENSION = "webp"
# The one prefix anyone may read (storage's bucket policy grants exactly this).
AVATAR_PREFIX = "avatars/"


def raw_key(owner_id: int, media_id: int) -> str:
    """Where the uploaded original lives; never served to anyone."""
    return f"{_USER}/{owner_id}/{_RAW}/{media_id}"


def rendition_key(owner_id: int, media_id: int, size: int) -> str:
    """Where a rendition (longest side `size` px) lives; immutable (a new photo is a new media id)."""
    return f"{_USER}/{owner_id}/{_RENDITIONS}/{media_id}/{size}.{RENDITION_EXTENSION}"


def avatar_key(owner_id: int, media_id: int, size: int) -> str:
    """Where an avatar's square rendition (side `size` px) lives; immutable and public."""
    return f"{AVATAR_PREFIX}{owner_id}/{media_id}/{size}.{RENDITION_EXTENSION}"


def raw_key_sql(owner_id: str, media_id: str) -> str:
    """`raw_key` as a PostgreSQL expression over the SQL expressions `owner_id` and `media_id`
    (for bulk loads that make media rows in SQL)."""
    return f"'{_USER}/' || {owner_id} || '/{_RAW}/' || {media_id}"


def rendition_key_sql(owner_id: str, media_id: str, size: int) -> str:
    """`rendition_key` as a PostgreSQL expression (see raw_key_sql)."""
    return f"'{_USER}/' || {owner_id} || '/{_RENDITIONS}/' || {media_id} || '/{int(size)}.{RENDITION_EXTENSION}'"


def owner_prefixes(owner_id: int) -> list[str]:
    """The prefixes of every key holding the owner's bytes: their photos' and their avatars' (a
    user's erasure leaves nothing under either)."""
    return [f"{_USER}/{owner_id}/", f"{AVATAR_PREFIX}{owner_id}/"]
