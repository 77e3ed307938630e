"""The object store holding export zips (S3: MinIO in production, moto in tests), and the reads of
the original photos that go into them.

Key layout, the one definition: `exports/{user_id}/{export_id}.zip`.

A zip is written as one multipart upload, part by part as it is produced (`MultipartUpload`), so a
build never holds more than one part. An upload that is neither completed nor aborted would keep its
parts (and their cost) forever: the builder records each upload id before sending parts and aborts
it on the next attempt, and the bucket's lifecycle aborts any upload still open after a day whatever
happened (ABANDONED_UPLOAD_DAYS).

The `minio` client is synchronous: every network call runs in a thread. Failing to reach the store
raises mesh.errors.Unavailable (EXPORT_STORAGE_UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule

from export_svc.settings import ExportSettings
from mesh.errors import Unavailable

log = logging.getLogger("export_svc.storage")

T = TypeVar("T")

ZIP_CONTENT_TYPE = "application/zip"
# Multipart uploads still open this long after they began are aborted by the store itself.
ABANDONED_UPLOAD_DAYS = 1
_PREFIX = "exports"
_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchUpload"}


def zip_key(user_id: int, export_id: int) -> str:
    """Where an export's zip lives."""
    return f"{_PREFIX}/{user_id}/{export_id}.zip"


def user_prefix(user_id: int) -> str:
    """Where every zip of the user lives."""
    return f"{_PREFIX}/{user_id}/"


class ExportStore:
    def __init__(self, settings: ExportSettings) -> None:
        endpoint = urlsplit(settings.s3_endpoint)
        public = urlsplit(settings.s3_public_endpoint or settings.s3_endpoint)
        for name, parts in (("s3_endpoint", endpoint), ("s3_public_endpoint", public)):
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{name} must be an http(s) URL, got {parts.geturl()!r}")
        self.bucket = settings.bucket
        self._endpoint = f"{endpoint.scheme}://{endpoint.netloc}"
        # minio's default client waits minutes and retries five times; a store that is down should
        # fail the attempt (which is then retried with backoff) within seconds.
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=60.0),
            maxsize=8,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        credentials: dict[str, Any] = {
            "access_key": settings.s3_access_key,
            "secret_key": settings.s3_secret_key,
            "region": settings.s3_region,
        }
        self._client = Minio(endpoint.netloc, secure=endpoint.scheme == "https", http_client=self._http, **credentials)
        # Download URLs are signed for the host clients use (signing is local: no request is made).
        self._signer = Minio(public.netloc, secure=public.scheme == "https", **credentials)

    async def ensure_bucket(self) -> None:
        """Creates the bucket if missing, with the lifecycle rule that aborts abandoned uploads.
        Nothing in it is readable without a signature (no bucket policy is set)."""

        def ensure() -> None:
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
            rule = Rule(
                ENABLED,
                rule_filter=Filter(prefix=f"{_PREFIX}/"),
                rule_id="abort-abandoned-uploads",
                abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(ABANDONED_UPLOAD_DAYS),
            )
            try:
                self._client.set_bucket_lifecycle(self.bucket, LifecycleConfig([rule]))
            except S3Error as exc:  # a store without lifecycles: the builder's own aborts remain
                log.warning("bucket lifecycle not set", extra={"code": exc.code, "detail": exc.message})

        await self._call(ensure)

    async def start_upload(self, key: str) -> str:
        """Opens a multipart upload of a zip under `key`; its upload id."""
        return await self._call(
            lambda: self._client._create_multipart_upload(self.bucket, key, {"Content-Type": ZIP_CONTENT_TYPE})
        )

    async def upload_part(self, key: str, upload_id: str, number: int, data: bytes | bytearray) -> str:
        """Sends part `number` (1-based; all but the last at least 5 MiB); its ETag."""
        # minio only hashes and sends the body, which a bytearray does as well as bytes (no copy).
        body = cast(bytes, data)
        return await self._call(lambda: self._client._upload_part(self.bucket, key, body, None, upload_id, number))

    async def complete_upload(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        parts = [Part(number, etag) for number, etag in enumerate(etags, start=1)]
        await self._call(lambda: self._client._complete_multipart_upload(self.bucket, key, upload_id, parts))

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Aborts the upload (its parts are deleted); an upload already gone is fine."""

        def abort() -> None:
            try:
                self._client._abort_multipart_upload(self.bucket, key, upload_id)
            except S3Error as exc:
                if exc.code not in _MISSING:
                    raise

        await self._call(abort)

    async def open_uploads(self, key: str) -> list[str]:
        """The ids of the multipart uploads open under `key` (tests and operators)."""

        def uploads() -> list[str]:
            found = self._client._list_multipart_uploads(self.bucket, prefix=key)
            return [u.upload_id for u in found.uploads if u.object_name == key and u.upload_id]

        return await self._call(uploads)

    async def size(self, key: str) -> int | None:
        """The stored object's size, or None if nothing is stored under `key`."""

        def stat() -> int | None:
            try:
                return self._client.stat_object(self.bucket, key).size
            except S3Error as exc:
                if exc.code in _MISSING:
                    return None
                raise

        return await self._call(stat)

    async def delete(self, keys: Sequence[str]) -> None:
        """Deletes the objects (at most 1000); keys with nothing stored are fine."""

        def remove() -> None:
            # The client sends the request lazily, when its error list is read.
            errors = list(self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))
            if errors:
                log.error("object store refused to delete", extra={"code": errors[0].code, "key": errors[0].name})
                raise Unavailable("export storage is unavailable; retry shortly", reason="EXPORT_STORAGE_UNAVAILABLE")

        if keys:
            await self._call(remove)

    async def delete_under(self, prefix: str) -> int:
        """Deletes every object under `prefix` and aborts every upload open under it; how many
        objects there were."""

        def remove() -> int:
            keys = [o.object_name for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]
            for upload in self._client._list_multipart_uploads(self.bucket, prefix=prefix).uploads:
                try:
                    self._client._abort_multipart_upload(self.bucket, upload.object_name or "", upload.upload_id or "")
                except S3Error as exc:
                    if exc.code not in _MISSING:
                        raise
            for start in range(0, len(keys), 1000):
                batch = [DeleteObject(k) for k in keys[start : start + 1000] if k]
                errors = list(self._client.remove_objects(self.bucket, batch))
                if errors:
                    log.error("object store refused to delete", extra={"code": errors[0].code, "key": errors[0].name})
                    raise Unavailable(
                        "export storage is unavailable; retry shortly", reason="EXPORT_STORAGE_UNAVAILABLE"
                    )
            return len(keys)

        return await self._call(remove)

    def presign_download(self, key: str, expires_in: dt.timedelta, filename: str) -> str:
        """A URL that GETs the zip for `expires_in` (whole seconds), saved as `filename`. Local."""
        return self._signer.presigned_get_object(
            self.bucket,
            key,
            expires=expires_in,
            response_headers={
                "response-content-disposition": f'attachment; filename="{filename}"',
                "response-content-type": ZIP_CONTENT_TYPE,
            },
        )

    async def _call(self, work: Callable[[], T]) -> T:
        with _unavailable_when_unreachable(self._endpoint):
            return await asyncio.to_thread(work)


class OriginalReader:
    """Streams original photos from the signed URLs media_svc hands out (BatchGetOriginals), in
    chunks, never a whole photo in memory."""

    CHUNK_BYTES = 1024 * 1024

    def __init__(self) -> None:
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=60.0),
            maxsize=4,
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )

    async def chunks(self, url: str) -> AsyncIterator[bytes]:
        """The bytes at `url`, in chunks of at most CHUNK_BYTES. Unavailable if the store cannot be
        read (a refusal included: the URL expired, the photo was deleted meanwhile)."""
        with _unavailable_when_unreachable(urlsplit(url).netloc):
            response = await asyncio.to_thread(
                self._http.request, "GET", url, preload_content=False, decode_content=False
            )
            try:
                if response.status != 200:
                    raise Unavailable(
                        f"a photo could not be read from storage (HTTP {response.status})",
                        reason="EXPORT_STORAGE_UNAVAILABLE",
                    )
                while chunk := await asyncio.to_thread(response.read, self.CHUNK_BYTES):
                    yield chunk
            finally:
                response.release_conn()


@contextmanager
def _unavailable_when_unreachable(endpoint: str) -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        log.error("object store refused a request", extra={"code": exc.code, "detail": exc.message})
        raise Unavailable("export storage is unavailable; retry shortly", reason="EXPORT_STORAGE_UNAVAILABLE") from exc
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        log.warning("object store unreachable", extra={"endpoint": endpoint, "error": str(exc)})
        raise Unavailable("export storage is unavailable; retry shortly", reason="EXPORT_STORAGE_UNAVAILABLE") from exc


def remove_bucket(settings: ExportSettings) -> None:
    """Deletes the export bucket and everything in it (tests and benchmarks clean up with it)."""
    endpoint = urlsplit(settings.s3_endpoint)
    client = Minio(
        endpoint.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=endpoint.scheme == "https",
        region=settings.s3_region,
    )
    if client.bucket_exists(settings.bucket):
        for item in client.list_objects(settings.bucket, recursive=True):
            client.remove_object(settings.bucket, item.object_name or "")
        for upload in client._list_multipart_uploads(settings.bucket).uploads:
            client._abort_multipart_upload(settings.bucket, upload.object_name or "", upload.upload_id or "")
        client.remove_bucket(settings.bucket)
