"""MediaService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

import datetime as dt

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from glimpse.media.v1 import media_pb2, media_pb2_grpc
from media_svc.models import MediaPurpose, MediaStatus
from media_svc.rendition_urls import RenditionUrls
from media_svc.repository import MediaRecord, RenditionRecord
from media_svc.service import MediaService
from mesh.errors import invalid_field
from mesh.identity import caller_id

# The wire names are ours with the enum's prefix; a status missing from the proto fails at import.
_STATUS = {status: media_pb2.MediaStatus.Value(f"MEDIA_STATUS_{status.value}") for status in MediaStatus}
_PURPOSE = {purpose: media_pb2.MediaPurpose.Value(f"MEDIA_PURPOSE_{purpose.value}") for purpose in MediaPurpose}
_PURPOSE_FROM_WIRE = {number: purpose for purpose, number in _PURPOSE.items()} | {
    media_pb2.MEDIA_PURPOSE_UNSPECIFIED: MediaPurpose.PHOTO
}


def _timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


class MediaServicer(media_pb2_grpc.MediaServiceServicer):
    def __init__(self, service: MediaService, rendition_urls: RenditionUrls) -> None:
        self._service = service
        self._rendition_urls = rendition_urls

    def rendition_message(self, rendition: RenditionRecord, purpose: MediaPurpose) -> media_pb2.Rendition:
        if purpose == MediaPurpose.AVATAR:
            # Public and immutable (object_keys): no signature, no expiry.
            url = self._rendition_urls.public(rendition.key)
            return media_pb2.Rendition(size=rendition.size, width=rendition.width, height=rendition.height, url=url)
        signed = self._rendition_urls.signed(rendition.key)
        return media_pb2.Rendition(
            size=rendition.size,
            width=rendition.width,
            height=rendition.height,
            url=signed.url,
            expire_time=_timestamp(signed.expires_at),
        )

    def media_message(self, media: MediaRecord) -> media_pb2.Media:
        # Only renditions get URLs, signed and time-limited; the raw upload's key never leaves the service.
        return media_pb2.Media(
            id=media.id,
            owner_id=media.owner_id,
            status=_STATUS[media.status],
            failure_reason=media.failure_reason or "",
            content_type=media.content_type,
            size_bytes=media.size_bytes,
            width=media.width or 0,
            height=media.height or 0,
            blurhash=media.blurhash or "",
            renditions=[self.rendition_message(r, media.purpose) for r in media.renditions],
            post_id=media.post_id or 0,
            create_time=_timestamp(media.created_at),
            purpose=_PURPOSE[media.purpose],
        )

    async def CreateUploadGrant(
        self, request: media_pb2.CreateUploadGrantRequest, context: grpc.aio.ServicerContext
    ) -> media_pb2.UploadGrant:
        purpose = _PURPOSE_FROM_WIRE.get(request.purpose)
        if purpose is None:
            raise invalid_field("purpose", "must be photo or avatar")
        grant = await self._service.create_upload_grant(
            caller_id(context), request.content_type, request.size_bytes, purpose
        )
        return media_pb2.UploadGrant(
            media_id=grant.media.id,
            url=grant.url,
            form_fields=grant.form_fields,
            object_key=grant.media.object_key,
            expire_time=_timestamp(grant.expires_at),
        )

    async def AttachMedia(
        self, request: media_pb2.AttachMediaRequest, context: grpc.aio.ServicerContext
    ) -> media_pb2.AttachMediaResponse:
        media = await self._service.attach_media(caller_id(context), request.post_id, list(request.media_ids))
        return media_pb2.AttachMediaResponse(media=[self.media_message(m) for m in media])

    async def BatchGetMedia(
        self, request: media_pb2.BatchGetMediaRequest, context: grpc.aio.ServicerContext
    ) -> media_pb2.BatchGetMediaResponse:
        media = await self._service.batch_get_media(list(request.media_ids))
        return media_pb2.BatchGetMediaResponse(media=[self.media_message(m) for m in media])

    async def DetachMedia(
        self, request: media_pb2.DetachMediaRequest, context: grpc.aio.ServicerContext
    ) -> media_pb2.DetachMediaResponse:
        detached = await self._service.detach_media(caller_id(context), request.post_id, list(request.media_ids))
        return media_pb2.DetachMediaResponse(detached_media_ids=detached)

    async def BatchGetOriginals(
        self, request: media_pb2.BatchGetOriginalsRequest, context: grpc.aio.ServicerContext
    ) -> media_pb2.BatchGetOriginalsResponse:
        found = await self._service.batch_get_originals(caller_id(context), list(request.media_ids))
        return media_pb2.BatchGetOriginalsResponse(
            originals=[
                media_pb2.Original(
                    media_id=o.media.id,
                    url=o.url,
                    expire_time=_timestamp(o.expires_at),
                    content_type=o.media.content_type,
                    size_bytes=o.media.size_bytes,
                )
                for o in found
            ]
        )

    async def AttachAvatar(
        self, request: media_pb2.AttachAvatarRequest, context: grpc.aio.ServicerContext
    ) -> media_pb2.Media:
        return self.media_message(await self._service.attach_avatar(caller_id(context), request.media_id))
