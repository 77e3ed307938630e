"""The rules of media records: upload grants, attaching media to posts (and detaching them when
the post could not be stored), attaching an upload as its owner's avatar, reading them back.

Raises mesh.errors.DomainError subclasses; storage or database outages surface as Unavailable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from glimpse.events.v1 import events_pb2
from media_svc import repository as repo
from media_svc.models import MediaPurpose, MediaStatus
from media_svc.object_keys import raw_key
from media_svc.repository import MediaRecord
from media_svc.storage import ObjectStore, StoredObject
from mesh.db import Database
from mesh.errors import FailedPrecondition, NotFound, PermissionDenied, invalid_field
from mesh.ids import IdGenerator
from mesh.outbox import Outbox

log = logging.getLogger("media_svc.service")

# The worker finds the real format from the bytes; the declared type only has to be a photo's.
ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/avif")
MAX_MEDIA_PER_POST = 10
MAX_BATCH = 100
# How long a signed URL of an original works: long enough for a data export to stream the photo.
ORIGINAL_URL_LIFETIME = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class UploadGrant:
    media: MediaRecord
    url: str
    form_fields: dict[str, str]
    expires_at: dt.datetime


@dataclass(frozen=True)
class SignedOriginal:
    media: MediaRecord
    url: str
    expires_at: dt.datetime


class MediaService:
    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        ids: IdGenerator,
        outbox: Outbox,
        *,
        max_bytes: int,
        grant_ttl: dt.timedelta,
    ) -> None:
        self._db = db
        self._store = store
        self._ids = ids
        self._outbox = outbox
        self._max_bytes = max_bytes
        self._grant_ttl = grant_ttl

    async def create_upload_grant(
        self, owner_id: int, content_type: str, size_bytes: int, purpose: MediaPurpose = MediaPurpose.PHOTO
    ) -> UploadGrant:
        """Records a PENDING media of `owner_id` for `purpose` and signs a grant to upload exactly its bytes.

        INVALID_ARGUMENT naming `content_type` (reason UNSUPPORTED_MEDIA_TYPE) or `size_bytes`
        (reason MEDIA_TOO_LARGE when above the limit).
        """
        content_type = self._check_content_type(content_type)
        if size_bytes < 1:
            raise invalid_field("size_bytes", "must be the file's size in bytes (at least 1)")
        if size_bytes > self._max_bytes:
            limit = f"{self._max_bytes / (1024 * 1024):g} MiB"
            raise invalid_field(
                "size_bytes", f"is {size_bytes} bytes; photos may be at most {limit}", reason="MEDIA_TOO_LARGE"
            )
        media_id = self._ids.next_id()
        key = raw_key(owner_id, media_id)
        post = self._store.presign_upload(key, content_type, size_bytes, self._grant_ttl)
        async with self._db.unit_of_work() as session:
            record = await repo.insert_media(
                session,
                media_id=media_id,
                owner_id=owner_id,
                object_key=key,
                content_type=content_type,
                size_bytes=size_bytes,
                upload_expires_at=post.expires_at,
                purpose=purpose,
            )
        return UploadGrant(record, post.url, post.fields, post.expires_at)

    @staticmethod
    def _check_content_type(raw: str) -> str:
        content_type = raw.split(";", 1)[0].strip().lower()
        if content_type in ACCEPTED_TYPES:
            return content_type
        accepted = ", ".join(ACCEPTED_TYPES)
        shown = repr(raw[:60]) if raw else "empty"
        raise invalid_field("content_type", f"must be one of {accepted}, got {shown}", reason="UNSUPPORTED_MEDIA_TYPE")

    async def attach_media(self, caller_id: int, post_id: int, media_ids: Sequence[int]) -> list[MediaRecord]:
        """Binds the caller's uploaded media to `post_id`, all or none; the media in request order,
        PROCESSING. Nothing is decoded here: the worker stores each photo's blurhash placeholder
        right after the post's event is published (media_svc.placeholders, which says why and
        what window that leaves).

        Idempotent: media already on `post_id` are returned as they are. Raises INVALID_ARGUMENT
        for a bad request; NOT_FOUND for an unknown media; PERMISSION_DENIED for another user's;
        FAILED_PRECONDITION with reason ALREADY_ATTACHED (on another post), NOT_UPLOADED (no bytes
        stored yet), SIZE_MISMATCH (stored size differs from the grant), MEDIA_TOO_LARGE or
        WRONG_PURPOSE (an avatar upload).
        """
        ids = _checked_post_media(post_id, media_ids)
        async with self._db.unit_of_work() as session:
            found = await repo.lock_media(session, ids)
            to_attach = []
            for media_id in ids:
                record = found.get(media_id)
                if record is None:
                    raise NotFound(f"media {media_id} does not exist", reason="MEDIA_NOT_FOUND")
                if record.owner_id != caller_id:
                    raise PermissionDenied(f"media {media_id} belongs to another user", reason="NOT_MEDIA_OWNER")
                if record.purpose != MediaPurpose.PHOTO:
                    raise _wrong_purpose(
                        record, "was uploaded as a profile picture; ask for an upload grant for a photo"
                    )
                if record.post_id == post_id:
                    continue
                if record.post_id is not None:
                    raise FailedPrecondition(
                        f"media {media_id} is already attached to another post; upload it again for a new post",
                        reason="ALREADY_ATTACHED",
                        metadata={"media_id": str(media_id)},
                    )
                to_attach.append(record)
            # Stat all at once: the rows stay locked only for one round trip to the store.
            stored = await asyncio.gather(*(self._store.stat(r.object_key) for r in to_attach))
            for record, found_object in zip(to_attach, stored, strict=True):
                self._check_upload(record, found_object)
            attached = await repo.attach(session, [r.id for r in to_attach], post_id) if to_attach else {}
        return [attached.get(i) or found[i] for i in ids]

    async def detach_media(self, caller_id: int, post_id: int, media_ids: Sequence[int]) -> list[int]:
        """Returns the caller's media attached to `post_id` and not yet rendered to PENDING
        (uploaded, attachable to another post); the ids detached, in request order.

        For post_svc's compensation when a post could not be stored after AttachMedia. Media
        unknown, attached elsewhere or unattached are left alone, and so are READY/FAILED ones:
        the worker only renders a post's media once the post's `posts.created` was published, so
        that post exists and keeps them. Idempotent. Raises INVALID_ARGUMENT for a bad request
        (as AttachMedia) and PERMISSION_DENIED (reason NOT_MEDIA_OWNER, nothing changed) if a
        media belongs to another user.
        """
        ids = _checked_post_media(post_id, media_ids)
        async with self._db.unit_of_work() as session:
            found = await repo.lock_media(session, ids)
            for media_id in ids:
                record = found.get(media_id)
                if record is not None and record.owner_id != caller_id:
                    raise PermissionDenied(f"media {media_id} belongs to another user", reason="NOT_MEDIA_OWNER")
            detached = set(await repo.detach(session, ids, post_id))
        if detached:
            log.info("media detached", extra={"post_id": post_id, "media_ids": sorted(detached)})
        return [i for i in ids if i in detached]

    async def attach_avatar(self, caller_id: int, media_id: int) -> MediaRecord:
        """Makes the caller's avatar upload PROCESSING and, in the same transaction, emits
        `media.avatar_attached`, on which the worker makes its square renditions. Idempotent: an
        avatar attached before is returned as it is, nothing emitted again.

        INVALID_ARGUMENT (media_id) for an id that is not positive; NOT_FOUND (MEDIA_NOT_FOUND);
        PERMISSION_DENIED (NOT_MEDIA_OWNER); FAILED_PRECONDITION: WRONG_PURPOSE (an upload for a
        post or story), NOT_UPLOADED, SIZE_MISMATCH or MEDIA_TOO_LARGE (as attach_media).
        """
        if media_id <= 0:
            raise invalid_field("media_id", "must be a media id from an upload grant with purpose avatar")
        async with self._db.unit_of_work() as session:
            record = (await repo.lock_media(session, [media_id])).get(media_id)
            if record is None:
                raise NotFound(f"media {media_id} does not exist", reason="MEDIA_NOT_FOUND")
            if record.owner_id != caller_id:
                raise PermissionDenied(f"media {media_id} belongs to another user", reason="NOT_MEDIA_OWNER")
            if record.purpose != MediaPurpose.AVATAR:
                raise _wrong_purpose(
                    record, "was uploaded for a post or story; ask for an upload grant with purpose avatar"
                )
            if record.status != MediaStatus.PENDING:
                return record
            self._check_upload(record, await self._store.stat(record.object_key))
            attached = await repo.attach_avatar(session, media_id)
            assert attached is not None  # locked and PENDING above
            await self._outbox.add(session, events_pb2.AvatarAttached(media_id=media_id, owner_id=caller_id))
        return attached

    def _check_upload(self, record: MediaRecord, stored: StoredObject | None) -> None:
        meta = {"media_id": str(record.id)}
        if stored is None:
            raise FailedPrecondition(
                f"media {record.id} has not been uploaded yet", reason="NOT_UPLOADED", metadata=meta
            )
        if stored.size > self._max_bytes:
            raise FailedPrecondition(
                f"media {record.id} is {stored.size} bytes, above the {self._max_bytes}-byte limit",
                reason="MEDIA_TOO_LARGE",
                metadata=meta,
            )
        if stored.size != record.size_bytes:
            raise FailedPrecondition(
                f"media {record.id} was uploaded with {stored.size} bytes but {record.size_bytes} were declared; "
                "request a new upload grant with the file's real size",
                reason="SIZE_MISMATCH",
                metadata=meta,
            )

    async def batch_get_media(self, media_ids: Sequence[int]) -> list[MediaRecord]:
        """The media that exist, in request order (unknown ids left out). INVALID_ARGUMENT above 100 ids."""
        ids = list(media_ids)
        if len(ids) > MAX_BATCH:
            raise invalid_field("media_ids", f"at most {MAX_BATCH} ids per call")
        if not ids:
            return []
        async with self._db.read_only() as session:
            found = await repo.get_media(session, ids)
        return [found[i] for i in ids if i in found]

    async def batch_get_originals(self, caller_id: int, media_ids: Sequence[int]) -> list[SignedOriginal]:
        """Signed GET URLs (working for ORIGINAL_URL_LIFETIME) of the caller's uploads among
        `media_ids` that are still stored, in request order (unknown ids left out), signed for the
        store's internal address: the caller is a service (export_svc), not a client. INVALID_ARGUMENT
        above 100 ids; PERMISSION_DENIED (NOT_MEDIA_OWNER) if one belongs to another user."""
        found = await self.batch_get_media(media_ids)
        for media in found:
            if media.owner_id != caller_id:
                raise PermissionDenied(f"media {media.id} belongs to another user", reason="NOT_MEDIA_OWNER")
        expires_at = dt.datetime.now(dt.UTC) + ORIGINAL_URL_LIFETIME
        return [
            SignedOriginal(
                media, self._store.presign_internal_download(media.object_key, ORIGINAL_URL_LIFETIME), expires_at
            )
            for media in found
            if media.raw_deleted_at is None and media.status is not MediaStatus.PENDING
        ]


def _wrong_purpose(record: MediaRecord, what: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"media {record.id} {what}", reason="WRONG_PURPOSE", metadata={"media_id": str(record.id)}
    )


def _checked_post_media(post_id: int, media_ids: Sequence[int]) -> list[int]:
    """The media ids of an attach/detach request; INVALID_ARGUMENT naming the field otherwise."""
    if post_id <= 0:
        raise invalid_field("post_id", "must be a post id")
    ids = list(media_ids)
    if not 1 <= len(ids) <= MAX_MEDIA_PER_POST:
        raise invalid_field("media_ids", f"a post has 1 to {MAX_MEDIA_PER_POST} media, got {len(ids)}")
    if len(set(ids)) != len(ids):
        raise invalid_field("media_ids", "must not repeat a media id")
    if any(i <= 0 for i in ids):
        raise invalid_field("media_ids", "must be media ids")
    return ids
