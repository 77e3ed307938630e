"""The caller's own account, owned by graph_svc: reading it, changing its profile (display name, bio,
website) and privacy, and its profile picture (an upload with purpose `avatar`, rendered by media_svc)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, status
from google.protobuf.field_mask_pb2 import FieldMask
from pydantic import BaseModel, ConfigDict, Field, Strict

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import MediaId, Text
from gateway.render import to_json
from gateway.resources import Resource, User, error_responses
from gateway.upstream import Services
from glimpse.graph.v1 import graph_pb2
from mesh.errors import InvalidArgument
from mesh.identity import as_caller

router = APIRouter(tags=["profile"])

# graph_svc's limits (graph_svc.profile), documented here and checked there.
DISPLAY_NAME_MAX = 64
BIO_MAX = 150
WEBSITE_MAX = 200


class UpdateMeBody(BaseModel):
    # A field this route cannot change is a 400 naming it, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    display_name: Text | None = Field(
        None,
        description=f"At most {DISPLAY_NAME_MAX} characters on one line (surrounding spaces trimmed); empty clears it.",
        json_schema_extra={"maxLength": DISPLAY_NAME_MAX},
        examples=["Ada Lovelace"],
    )
    bio: Text | None = Field(
        None,
        description=f"At most {BIO_MAX} characters; line breaks allowed, no other control characters.",
        json_schema_extra={"maxLength": BIO_MAX},
        examples=["Mathematician.\nPoetical science."],
    )
    website: Text | None = Field(
        None,
        description=f'An http or https URL ("example.com" means https://example.com), at most {WEBSITE_MAX} '
        "characters once normalised (lower-case scheme and host, no default port); empty removes it.",
        examples=["https://ada.example"],
    )
    is_private: Annotated[bool, Strict()] | None = Field(
        None,
        description="true: only approved followers see your posts (existing ones included) and lists, and "
        "following you sends a request. false: public again, and every pending request is approved.",
    )


class AvatarBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_id: MediaId = Field(
        description="From `POST /v1/media/upload-url` with `purpose: avatar`, once the file is uploaded."
    )


class AvatarChange(Resource):
    user: User = Field(description="Your account as it is now: the previous picture until the new one is ready.")
    applied: bool = Field(
        description="true when the new picture is already shown; false while its renditions are made (a few "
        "seconds: read `GET /v1/users/me` again). An upload that turns out not to be a usable image leaves "
        "the picture as it was."
    )


class AvatarRemoval(Resource):
    deleted: bool = Field(description="false when you had no picture, shown or pending (nothing changed).")
    user: User


@router.get(
    "/v1/users/me",
    response_model=User,
    summary="Your account",
    response_description="Your profile as others see it, with your privacy setting.",
    responses=error_responses(401, 429),
    dependencies=[rate_limits.user_reads],
)
async def get_me(caller: CallerId, services: Services) -> dict[str, Any]:
    """Your own account (the same shape as any user's, counts included)."""
    request = graph_pb2.GetUserRequest(user_id=caller)
    return to_json(await services.graph.GetUser(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.patch(
    "/v1/users/me",
    response_model=User,
    summary="Change your profile or privacy",
    response_description="Your account as it is now.",
    responses=error_responses(400, 401, 413, 429),
    dependencies=[rate_limits.follow_changes],
)
async def update_me(body: UpdateMeBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """Changes the fields sent, all or none: a 400 naming the first bad field changes nothing; a field not
    sent is left as it is. 400 for no field, a null or a field that cannot be changed here. Making the
    account public approves every pending follow request at once."""
    paths = sorted(body.model_fields_set)
    if not paths:
        names = list(UpdateMeBody.model_fields)
        raise InvalidArgument(
            f"send at least one field to change: {', '.join(names)}", fields=dict.fromkeys(names, "none was sent")
        )
    for path in paths:
        if getattr(body, path) is None:
            raise InvalidArgument(f"{path}: must not be null", fields={path: "must not be null"})
    user = graph_pb2.User(
        display_name=body.display_name or "",
        bio=body.bio or "",
        website=body.website or "",
        is_private=bool(body.is_private),
    )
    request = graph_pb2.UpdateUserRequest(user=user, update_mask=FieldMask(paths=paths))
    return to_json(await services.graph.UpdateUser(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.put(
    "/v1/users/me/avatar",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AvatarChange,
    summary="Set your profile picture",
    response_description="Accepted: the picture is shown once its renditions are ready.",
    responses=error_responses(400, 401, 403, 404, 413, 429),
    dependencies=[rate_limits.uploads],
)
async def set_avatar(body: AvatarBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """Makes your uploaded photo (granted with `purpose: avatar`) your picture: square 320 and 150 px
    crops of its centre, upright, without its metadata, at public URLs that name the upload (a new
    picture is a new URL). 404 MEDIA_NOT_FOUND, 403 NOT_MEDIA_OWNER; 400 WRONG_PURPOSE (granted for a
    post), NOT_UPLOADED, SIZE_MISMATCH or MEDIA_TOO_LARGE. Repeating it is harmless."""
    request = graph_pb2.SetAvatarRequest(media_id=body.media_id)
    return to_json(await services.graph.SetAvatar(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.delete(
    "/v1/users/me/avatar",
    response_model=AvatarRemoval,
    summary="Remove your profile picture",
    response_description="Your account without a picture.",
    responses=error_responses(401, 429),
    dependencies=[rate_limits.uploads],
)
async def delete_avatar(caller: CallerId, services: Services) -> dict[str, Any]:
    """Removes your picture (and one still being processed); its files are deleted. Caches may keep a
    copy for up to a day. Repeating it is harmless."""
    request = graph_pb2.DeleteAvatarRequest()
    return to_json(await services.graph.DeleteAvatar(request, timeout=services.timeout, metadata=as_caller(caller)))
