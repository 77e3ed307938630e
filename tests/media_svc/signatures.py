"""What an S3 store checks on a presigned GET (AWS Signature Version 4, query-string form), written
from the specification and not from minio-py, so the tests check our URLs against the rule itself:
moto serves a presigned URL without checking its signature or its expiry, MinIO and S3 do both.
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit


@dataclass(frozen=True)
class Presigned:
    """A presigned URL's parts: the signing time, how long it works, and what it signs."""

    signed_at: dt.datetime
    expires_at: dt.datetime
    access_key: str
    region: str
    query: dict[str, str]


def parse(url: str) -> Presigned:
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256", query
    assert query["X-Amz-SignedHeaders"] == "host", query
    signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    access_key, day, region, service, terminator = query["X-Amz-Credential"].split("/")
    assert (day, service, terminator) == (signed_at.strftime("%Y%m%d"), "s3", "aws4_request"), query
    expires_at = signed_at + dt.timedelta(seconds=int(query["X-Amz-Expires"]))
    return Presigned(signed_at, expires_at, access_key, region, query)


def signature_holds(url: str, *, host: str, secret_key: str) -> bool:
    """Whether the store at `host` (the Host header it receives) accepts `url`'s signature, made with
    `secret_key`, for a GET of the URL's path. Expiry is not checked here: see `parse`."""
    presigned = parse(url)
    query = presigned.query
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()) if k != "X-Amz-Signature")
    canonical_request = "\n".join(
        ["GET", urlsplit(url).path, canonical_query, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = f"{presigned.signed_at:%Y%m%d}/{presigned.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (f"{presigned.signed_at:%Y%m%d}", presigned.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, query["X-Amz-Signature"])


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")
