"""The object store holding photo bytes, spoken to as plain S3 (MinIO in production, moto in tests).

Everything S3-specific lives here, so replacing the store or its client library touches one file.
The `minio` client is synchronous: every network call runs in a thread, off the event loop.
Failing to reach the store raises mesh.errors.Unavailable (RPCs answer UNAVAILABLE, consumers retry).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import format_datetime
from fnmatch import fnmatchcase
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.datatypes import PostPolicy
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from media_svc.object_keys import AVATAR_PREFIX
from media_svc.settings import MediaSettings
from mesh.errors import Unavailable

log = logging.getLogger("media_svc.storage")

T = TypeVar("T")

# Renditions live under immutable keys: a new version of a photo is a new media id. (Clients never
# see this header: every download is signed and its response says how long to keep it.)
IMMUTABLE = "public, max-age=31536000, immutable"
# A signed download's response may be kept by any cache (the URL is the capability), but only until
# the URL stops working: its Expires header is the URL's expiry.
SIGNED_DOWNLOAD_CACHE = "public, immutable"
# Avatars are public under keys that change with the picture, so they could be kept forever; a day
# bounds how long a removed (or erased) picture stays in a CDN or browser cache after its objects
# are deleted.
AVATAR_CACHE = "public, max-age=86400"
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchVersion"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PresignedPost:
    """An HTML-form upload: POST `fields` and then the file (as "file") to `url` before `expires_at`."""

    url: str
    fields: dict[str, str]
    expires_at: dt.datetime


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str


class ObjectStore:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str,
        bucket: str,
        public_endpoint: str | None = None,
        download_base_url: str | None = None,
    ) -> None:
        """`public_endpoint`: the store as clients reach it (default `endpoint`); downloads are signed
        for its host. `download_base_url`: where clients fetch "<base>/<key>" instead (a CDN in front
        of the public endpoint, keeping the path "/<bucket>"); ValueError if the store is addressed
        with the bucket in the host name (AWS), whose signed path has no bucket to keep."""
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the S3 endpoint must be an http(s) URL, got {endpoint!r}")
        self.bucket = bucket
        self._endpoint = f"{parts.scheme}://{parts.netloc}"
        # The upload policy's signature does not cover the host, so clients may use another address.
        self._public_endpoint = (public_endpoint or self._endpoint).rstrip("/")
        public = urlsplit(self._public_endpoint)
        if public.scheme not in ("http", "https") or not public.netloc:
            raise ValueError(f"the public S3 endpoint must be an http(s) URL, got {public_endpoint!r}")
        # A presigned GET's signature covers the host: downloads are signed by a client of the public
        # address (signing is local: with the region given, this client never makes a request).
        self._signer = Minio(
            public.netloc, access_key=access_key, secret_key=secret_key, secure=public.scheme == "https", region=region
        )
        # Where minio puts the bucket: in the path, or in the host name for AWS (virtual-host style).
        probe = self._signer.presigned_get_object(bucket, "probe", expires=dt.timedelta(seconds=1), request_date=_EPOCH)
        self._signed_prefix = probe[: probe.index("/probe?") + 1]
        if download_base_url is None:
            self._download_prefix = self._signed_prefix
        elif self._signed_prefix == f"{self._public_endpoint}/{bucket}/":
            self._download_prefix = f"{download_base_url.rstrip('/')}/"
        else:
            raise ValueError(
                f"a download base URL ({download_base_url!r}) needs a store addressed path-style, "
                f"but {self._public_endpoint!r} puts the bucket in the host name"
            )
        # minio's default client waits minutes and retries five times; a store that is down
        # should fail the request (or the message, which is then retried) within seconds.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=30.0),
            maxsize=16,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region,
            http_client=http,
        )

    def public_read_policy(self) -> dict[str, Any]:
        """The bucket policy media_svc installs: anyone may GET what is under the avatars prefix
        (object_keys.AVATAR_PREFIX), and nothing else."""
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicAvatars",
                    "Effect": "Allow",
                    "Principal": {"AWS": ["*"]},
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{self.bucket}/{AVATAR_PREFIX}*"],
                }
            ],
        }

    def public_url(self, key: str) -> str:
        """The unsigned URL of `key` as clients reach the store (or the CDN in front of it): it works
        only under the avatars prefix, the one the bucket policy lets anyone read."""
        return self._download_prefix + key

    async def ensure_bucket(self) -> None:
        """Creates the bucket if missing and makes sure no one reads anything in it without a
        signature but the avatars (public_read_policy): any other policy is replaced (earlier
        versions let anyone read renditions)."""

        def ensure() -> None:
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    # Another process created it in the meantime.
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            # Beside the avatars, the store's default holds: only signed requests read or write. An
            # Allow-everyone statement for renditions would outlive any privacy change.
            wanted = self.public_read_policy()
            if anonymous_reads(self._bucket_policy()) != anonymous_reads(wanted):
                self._client.set_bucket_policy(self.bucket, json.dumps(wanted))

        await self._call(ensure)

    def _bucket_policy(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._client.get_bucket_policy(self.bucket)))
        except S3Error as exc:
            if exc.code == "NoSuchBucketPolicy":
                return None
            raise

    async def bucket_policy(self) -> dict[str, Any] | None:
        """The bucket's policy document, None if it has none (the default: nothing is anonymous)."""
        return await self._call(self._bucket_policy)

    def presign_download(self, key: str, signed_at: dt.datetime, expires_at: dt.datetime) -> str:
        """A URL that GETs `key` until `expires_at` (whole seconds after `signed_at`, at most 7 days),
        the same for every call with the same arguments; its responses carry `Expires: expires_at`,
        so no cache keeps them longer. Signing is local (no request to the store).
        """
        url = self._signer.presigned_get_object(
            self.bucket,
            key,
            expires=expires_at - signed_at,
            response_headers={
                "response-cache-control": SIGNED_DOWNLOAD_CACHE,
                "response-expires": format_datetime(expires_at.astimezone(dt.UTC), usegmt=True),
            },
            request_date=signed_at,
        )
        if not url.startswith(self._signed_prefix):  # the probe at start-up found the shape
            raise RuntimeError(f"unexpected presigned URL shape for {self._signed_prefix!r}: {url[:80]!r}")
        return self._download_prefix + url[len(self._signed_prefix) :]

    def presign_internal_download(self, key: str, expires_in: dt.timedelta) -> str:
        """A URL that GETs `key` for `expires_in` (whole seconds), for a service inside the mesh (a data
        export reading originals): signed for the store's own address (s3_endpoint), which services
        reach, not the public one clients use. Signing is local (no request to the store)."""
        return self._client.presigned_get_object(self.bucket, key, expires=expires_in)

    def presign_upload(self, key: str, content_type: str, size_bytes: int, ttl: dt.timedelta) -> PresignedPost:
        """A POST policy for exactly `key`, `content_type` and `size_bytes` bytes, valid for `ttl`.

        Signing is local (no request to the store), so this does not block.
        """
        expires_at = dt.datetime.now(dt.UTC).replace(microsecond=0) + ttl
        policy = PostPolicy(self.bucket, expires_at)
        policy.add_equals_condition("key", key)
        policy.add_equals_condition("Content-Type", content_type)
        # Exactly the declared size: the store refuses any other body, so the size the grant was
        # checked against is the size that is stored (AttachMedia checks again, for stores that
        # do not enforce policies).
        policy.add_content_length_range_condition(size_bytes, size_bytes)
        fields = self._client.presigned_post_policy(policy)
        return PresignedPost(
            url=f"{self._public_endpoint}/{self.bucket}",
            fields={**fields, "key": key, "Content-Type": content_type},
            expires_at=expires_at,
        )

    async def stat(self, key: str) -> StoredObject | None:
        """The stored object's size and type, or None if nothing is stored under `key`."""

        def stat() -> StoredObject | None:
            try:
                found = self._client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING:
                    return None
                raise
            return StoredObject(size=found.size or 0, content_type=found.content_type or "")

        return await self._call(stat)

    async def read(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes (at most `max_bytes` + 1, so an oversized object is noticed without
        reading it all), or None if nothing is stored under `key`."""

        def read() -> bytes | None:
            try:
                response = self._client.get_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING:
                    return None
                raise
            try:
                chunks = []
                remaining = max_bytes + 1
                while remaining > 0:
                    chunk = response.read(min(remaining, 1024 * 1024))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    remaining -= len(chunk)
                return b"".join(chunks)
            finally:
                response.close()
                response.release_conn()

        return await self._call(read)

    async def write(self, key: str, data: bytes, content_type: str, *, cache_control: str = IMMUTABLE) -> None:
        """Stores `data` under `key`, replacing what was there."""

        def write() -> None:
            self._client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata={"Cache-Control": cache_control},
            )

        await self._call(write)

    async def delete(self, keys: Sequence[str]) -> None:
        """Deletes the objects under `keys` (at most 1000, one request); keys with nothing stored
        are fine. Unavailable if the store refused any of them (deleting again is harmless)."""

        def delete() -> None:
            # The client sends the request lazily, when its error list is read.
            errors = list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))
            if errors:
                first = errors[0]
                log.error(
                    "object store refused to delete",
                    extra={"code": first.code, "key": first.name, "refused": len(errors), "keys": len(keys)},
                )
                raise Unavailable("photo storage is unavailable; retry shortly", reason="STORAGE_UNAVAILABLE")

        if keys:
            await self._call(delete)

    async def list_keys(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` keys of objects stored under `prefix` (a user's erasure checks that nothing is
        left under theirs). Unavailable if the store cannot be reached."""

        def list_keys() -> list[str]:
            found = self._client.list_objects(self.bucket, prefix=prefix, recursive=True)
            return [item.object_name for _, item in zip(range(limit), found, strict=False) if item.object_name]

        return await self._call(list_keys)

    async def _call(self, work: Callable[[], T]) -> T:
        with _unavailable_when_unreachable(self._endpoint):
            return await asyncio.to_thread(work)


def anonymous_reads(policy: dict[str, Any] | None) -> list[str]:
    """The resources a bucket `policy` document lets anyone read without a signature (empty for
    None: no policy). Conservative: an Allow with NotPrincipal or NotAction counts as granting."""
    found: list[str] = []
    for statement in _as_list((policy or {}).get("Statement", [])):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        anyone = "NotPrincipal" in statement or principal == "*"
        if isinstance(principal, dict):
            anyone = anyone or "*" in _as_list(principal.get("AWS", []))
        actions = [str(a).lower() for a in _as_list(statement.get("Action", []))]
        reads = "NotAction" in statement or any(fnmatchcase("s3:getobject", a) for a in actions)
        if anyone and reads:
            found += [str(r) for r in _as_list(statement.get("Resource", statement.get("NotResource", [])))]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@contextmanager
def _unavailable_when_unreachable(endpoint: str) -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        # The store answered but refused (credentials, missing bucket...): a deployment problem,
        # reported as unavailable so callers retry rather than blame the request.
        log.error("object store refused a request", extra={"code": exc.code, "detail": exc.message})
        raise Unavailable("photo storage is unavailable; retry shortly", reason="STORAGE_UNAVAILABLE") from exc
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        log.warning("object store unreachable", extra={"endpoint": endpoint, "error": str(exc)})
        raise Unavailable("photo storage is unavailable; retry shortly", reason="STORAGE_UNAVAILABLE") from exc


def admin_client(settings: MediaSettings) -> Minio:
    """A plain client for operators' tasks (inspecting what was stored, removing a test bucket)."""
    endpoint = urlsplit(settings.s3_endpoint)
    return Minio(
        endpoint.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=endpoint.scheme == "https",
        region=settings.s3_region,
    )


def remove_bucket(settings: MediaSettings) -> None:
    """Deletes the media bucket and everything in it (tests and benchmarks clean up with it)."""
    store = admin_client(settings)
    if store.bucket_exists(settings.bucket):
        for item in store.list_objects(settings.bucket, recursive=True):
            store.remove_object(settings.bucket, item.object_name or "")
        store.remove_bucket(settings.bucket)
