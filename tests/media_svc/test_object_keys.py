"""The key layout, defined once: the bucket's public-read policy is built from it, so renditions are
readable by anyone and raw uploads by no one, whatever the layout becomes."""

from __future__ import annotations

import io
import json
from fnmatch import fnmatchcase

from sqlalchemy import create_engine, text

from media_svc.images import RENDITION_SIZES
from media_svc.object_keys import PUBLIC_KEYS, raw_key, raw_key_sql, rendition_key, rendition_key_sql
from tests.media_svc import photos


def test_the_public_pattern_covers_every_rendition_and_no_upload():
    # S3 policy wildcards: `*` matches any run of characters, `/` included (as fnmatch's).
    for owner, media_id in ((1, 2), (506085774953809920, 506085775171912704)):
        assert all(fnmatchcase(rendition_key(owner, media_id, size), PUBLIC_KEYS) for size in RENDITION_SIZES)
        assert not fnmatchcase(raw_key(owner, media_id), PUBLIC_KEYS)


async def test_the_bucket_serves_renditions_to_anyone_and_uploads_to_no_one(
    make_account, upload, media_settings, s3_admin, s3
):
    policy = json.loads(s3_admin.get_bucket_policy(media_settings.bucket))
    [statement] = policy["Statement"]
    assert statement["Resource"] == [f"arn:aws:s3:::{media_settings.bucket}/{PUBLIC_KEYS}"]

    user = await make_account()
    grant = await upload(user, photos.tiny_jpeg())
    assert grant.object_key == raw_key(user.id, grant.media_id)
    rendition = rendition_key(user.id, grant.media_id, 150)
    s3_admin.put_object(media_settings.bucket, rendition, io.BytesIO(b"webp"), 4)
    base = media_settings.public_base_url
    assert (await s3.get(f"{base}/{rendition}")).status_code == 200
    assert (await s3.get(f"{base}/{grant.object_key}")).status_code == 403


def test_the_sql_spelling_builds_the_same_keys(database_url):
    """Bulk loads (bench/feed_data.py) make keys in SQL from the same layout."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    f"SELECT {raw_key_sql('o', 'm')}, {rendition_key_sql('o', 'm', 640)}"
                    " FROM (VALUES (506085774953809920, 506085775171912704)) AS v(o, m)"
                )
            ).one()
    finally:
        engine.dispose()
    owner, media_id = 506085774953809920, 506085775171912704
    assert tuple(row) == (raw_key(owner, media_id), rendition_key(owner, media_id, 640))
