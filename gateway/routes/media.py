"""Uploads: a grant to send photo bytes straight to object storage (no service streams them)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import Text
from gateway.render import to_json
from gateway.resources import OneOf, UploadGrant, error_responses, wire_words
from gateway.upstream import Services
from glimpse.media.v1 import media_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["media"])

PURPOSES = wire_words(media_pb2.MediaPurpose.DESCRIPTOR)
_PURPOSE = OneOf(
    PURPOSES,
    "photo (the default): for a post or a story. avatar: for your profile picture "
    "(`PUT /v1/users/me/avatar`); each can only be used for what it was granted for.",
)


class UploadGrantBody(BaseModel):
    # Documented here, checked by media_svc (whose error names the accepted types).
    content_type: Text = Field(
        description="image/jpeg, image/png, image/webp, image/heic, image/heif or image/avif.",
        examples=["image/jpeg"],
        json_schema_extra={"enum": ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/avif"]},
    )
    size_bytes: int = Field(
        ge=0,
        le=2**62,
        description="Exact size of the file to upload; the deployment's limit (20 MB by default) is checked.",
        examples=[2_400_000],
    )
    purpose: Annotated[Text, *_PURPOSE] = "photo"


@router.post(
    "/v1/media/upload-url",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadGrant,
    summary="Get an upload grant for a photo",
    response_description="Where and how to upload the bytes, valid until `expire_time`.",
    responses=error_responses(400, 401, 413, 429),
    dependencies=[rate_limits.uploads],
)
async def create_upload_grant(body: UploadGrantBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """Reserves a media id owned by the caller, for a post or story photo or for the profile picture
    (`purpose`), and returns a form to POST the file to object storage. 400 for an unsupported type
    or a size over the limit."""
    purpose = media_pb2.MediaPurpose.Value(f"MEDIA_PURPOSE_{body.purpose.upper()}")
    request = media_pb2.CreateUploadGrantRequest(
        content_type=body.content_type, size_bytes=body.size_bytes, purpose=purpose
    )
    grant = await services.media.CreateUploadGrant(request, timeout=services.timeout, metadata=as_caller(caller))
    return to_json(grant)
