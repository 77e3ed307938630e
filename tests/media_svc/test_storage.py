"""The bucket as the world sees it: nothing but avatars is readable without a signature, whatever policy
an older version installed, and a signed download works only for the host and path it was signed for."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest

from media_svc.app import open_store
from media_svc.object_keys import avatar_key, rendition_key
from media_svc.settings import MediaSettings
from media_svc.storage import ObjectStore, anonymous_reads, remove_bucket
from tests.media_svc import photos, signatures

# What media_svc installed before rendition URLs were signed: every rendition readable by anyone.
OLD_PUBLIC_READ = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": ["*"]},
            "Action": ["s3:GetObject"],
            "Resource": ["arn:aws:s3:::{bucket}/u/*/r/*"],
        }
    ],
}


def _policy(bucket: str) -> dict:
    return json.loads(json.dumps(OLD_PUBLIC_READ).replace("{bucket}", bucket))


def unsigned(settings: MediaSettings, key: str) -> str:
    """The object's plain URL at the local store (path-style), as anyone could guess it."""
    return f"{settings.s3_endpoint}/{settings.bucket}/{key}"


async def test_no_one_reads_the_bucket_without_a_signature_but_avatars(
    media_addr, make_account, upload, media_settings, s3_admin, s3
):
    store = await open_store(media_settings)  # as the API and the worker start
    policy = await store.bucket_policy()
    assert anonymous_reads(policy) == [f"arn:aws:s3:::{media_settings.bucket}/avatars/*"], policy

    user = await make_account()
    grant = await upload(user, photos.tiny_jpeg())
    rendition = rendition_key(user.id, grant.media_id, 150)
    s3_admin.put_object(media_settings.bucket, rendition, io.BytesIO(b"webp"), 4, content_type="image/webp")
    for key in (rendition, grant.object_key):
        assert (await s3.get(unsigned(media_settings, key))).status_code == 403, key  # anonymous, no signature

    # A profile picture is public (as on Instagram), at the URL the worker hands graph_svc.
    avatar = avatar_key(user.id, grant.media_id, 150)
    s3_admin.put_object(media_settings.bucket, avatar, io.BytesIO(b"webp"), 4, content_type="image/webp")
    response = await s3.get(store.public_url(avatar))
    assert (response.status_code, response.content) == (200, b"webp")
    assert store.public_url(avatar) == unsigned(media_settings, avatar)

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    signed = store.presign_download(rendition, now, now + dt.timedelta(minutes=5))
    response = await s3.get(signed)
    assert (response.status_code, response.content) == (200, b"webp")


async def test_an_older_public_read_policy_is_removed_at_start_up(media_settings, s3_admin, s3):
    settings = media_settings.model_copy(update={"media_bucket": f"{media_settings.bucket}-old-{uuid.uuid4().hex[:6]}"})
    s3_admin.make_bucket(settings.bucket)
    try:
        s3_admin.set_bucket_policy(settings.bucket, json.dumps(_policy(settings.bucket)))
        key = rendition_key(1, 2, 150)
        s3_admin.put_object(settings.bucket, key, io.BytesIO(b"webp"), 4)
        assert (await s3.get(unsigned(settings, key))).status_code == 200  # the leak being closed

        store = await open_store(settings)
        assert await store.bucket_policy() == store.public_read_policy()
        assert (await s3.get(unsigned(settings, key))).status_code == 403
        await store.ensure_bucket()  # idempotent
        assert await store.bucket_policy() == store.public_read_policy()
    finally:
        remove_bucket(settings)


@pytest.mark.parametrize(
    ("statement", "granted"),
    [
        (OLD_PUBLIC_READ["Statement"][0], ["arn:aws:s3:::{bucket}/u/*/r/*"]),
        (
            {"Effect": "Allow", "Principal": "*", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
            ["arn:aws:s3:::b/*"],
        ),
        (
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "arn:aws:s3:::b/*"},
            ["arn:aws:s3:::b/*"],
        ),
        (
            {"Effect": "Allow", "Principal": "*", "NotAction": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"},
            ["arn:aws:s3:::b/*"],
        ),
        ({"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}, []),
        ({"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"}, []),
        (
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam::123456789012:user/glimpse"]},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::b/*",
            },
            [],
        ),
    ],
    ids=["older-glimpse", "get-star", "any-action", "not-action", "deny", "list-only", "named-user"],
)
def test_anonymous_reads_finds_every_statement_that_lets_anyone_read(statement, granted):
    assert anonymous_reads({"Version": "2012-10-17", "Statement": [statement]}) == granted
    assert anonymous_reads(None) == []


def test_a_download_is_signed_for_the_public_host_and_fetched_through_the_cdn():
    store = ObjectStore(
        "http://object-store:9000",
        "glimpse",
        "secret-key",
        "us-east-1",
        "glimpse-media",
        public_endpoint="https://media.glimpse.example.com",
        download_base_url="https://cdn.example.net/glimpse-media",
    )
    signed_at = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    url = store.presign_download("u/1/r/2/1080.webp", signed_at, signed_at + dt.timedelta(hours=1))
    assert url.startswith("https://cdn.example.net/glimpse-media/u/1/r/2/1080.webp?")
    # The CDN forwards path and query with the origin's Host: the store checks the signature for it.
    assert signatures.signature_holds(url, host="media.glimpse.example.com", secret_key="secret-key")
    assert not signatures.signature_holds(url, host="cdn.example.net", secret_key="secret-key")
    assert not signatures.signature_holds(url, host="media.glimpse.example.com", secret_key="another-key")
    other_photo = url.replace("/r/2/", "/r/3/")
    assert not signatures.signature_holds(other_photo, host="media.glimpse.example.com", secret_key="secret-key")
    without_cdn = ObjectStore(
        "http://object-store:9000",
        "glimpse",
        "secret-key",
        "us-east-1",
        "glimpse-media",
        "https://media.glimpse.example.com",
    )
    direct = without_cdn.presign_download("u/1/r/2/1080.webp", signed_at, signed_at + dt.timedelta(hours=1))
    assert direct == url.replace("https://cdn.example.net/", "https://media.glimpse.example.com/")
    presigned = signatures.parse(url)
    assert (presigned.signed_at, presigned.expires_at) == (signed_at, signed_at + dt.timedelta(hours=1))
    assert presigned.query["response-expires"] == "Sat, 01 Mar 2025 13:00:00 GMT"
    assert presigned.query["response-cache-control"] == "public, immutable"


def test_a_download_from_an_aws_style_store_names_the_bucket_in_the_host():
    aws = "https://s3.us-east-1.amazonaws.com"
    store = ObjectStore(aws, "glimpse", "secret-key", "us-east-1", "glimpse-media")
    signed_at = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    url = store.presign_download("u/1/r/2/1080.webp", signed_at, signed_at + dt.timedelta(hours=1))
    assert url.startswith("https://glimpse-media.s3.us-east-1.amazonaws.com/u/1/r/2/1080.webp?")
    assert signatures.signature_holds(url, host="glimpse-media.s3.us-east-1.amazonaws.com", secret_key="secret-key")
    # A CDN base URL keeps the signed path "/<bucket>/...", which such a store does not have.
    with pytest.raises(ValueError, match="path-style"):
        ObjectStore(
            aws, "k", "s", "us-east-1", "glimpse-media", download_base_url="https://cdn.example.net/glimpse-media"
        )
