"""The JSON resources the API returns, declared for the OpenAPI document and checked on the way out.

They mirror the protobuf messages as `gateway.render.to_json` renders them: 64-bit integers are
strings, timestamps are RFC 3339 strings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class User(BaseModel):
    id: str = Field(description="64-bit user id, as a decimal string.", examples=["7240392310784001"])
    username: str = Field(description="Lower-case, 3-30 characters of [a-z0-9._].", examples=["ada.l"])
    display_name: str
    bio: str
    follower_count: str = Field(description="64-bit count, as a decimal string.", examples=["12"])
    following_count: str = Field(description="64-bit count, as a decimal string.", examples=["3"])
    create_time: str | None = Field(None, description="RFC 3339.", examples=["2024-05-01T12:00:00.123Z"])


class Session(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    access_token_expire_time: str = Field(description="RFC 3339.")
    refresh_token: str = Field(description="Exchange at `POST /v1/sessions/refresh` for a new pair.")
    refresh_token_expire_time: str = Field(description="RFC 3339.")
    user: User


class FollowResult(BaseModel):
    created: bool = Field(description="False when the caller already followed the target (nothing changed).")
    target: User


class UnfollowResult(BaseModel):
    deleted: bool = Field(description="False when the caller did not follow the user (nothing changed).")


class Follow(BaseModel):
    user: User
    create_time: str = Field(description="When the follow began, RFC 3339.")


class FollowPage(BaseModel):
    items: list[Follow] = Field(description="Newest follow first.")
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")


class UserPage(BaseModel):
    items: list[User]
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    upstreams: dict[str, str] = Field(
        description="Each upstream service's grpc.health.v1 status.", examples=[{"graph": "SERVING"}]
    )


class ErrorStatus(BaseModel):
    code: str = Field(description="The gRPC status code name.", examples=["NOT_FOUND"])
    message: str = Field(description="What went wrong, for a person to read.")
    details: list[dict[str, Any]] = Field(
        description='google.rpc details: {"type": "ErrorInfo", "reason", "domain", "metadata"}, '
        '{"type": "BadRequest", "field_violations": [{"field", "description"}]} and '
        '{"type": "RetryInfo", "retry_delay": "12s"}.'
    )


class ErrorResponse(BaseModel):
    error: ErrorStatus


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error statuses a route can return, plus a `default` for
    the rest (which also keeps FastAPI from documenting a 422 the gateway never sends)."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[status]} for status in statuses
    }
    if 429 in responses:
        responses[429]["headers"] = {"Retry-After": _RETRY_AFTER}
    responses["default"] = {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS["default"]}
    return responses


_ERROR_DESCRIPTIONS: dict[int | str, str] = {
    400: "The request is invalid (INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE); see details.",
    401: "No valid access token (or wrong credentials).",
    403: "The caller may not do this.",
    404: "No such resource.",
    409: "It already exists.",
    413: "The request body is too large.",
    429: "Too many requests (reason RATE_LIMITED); retry after `Retry-After` seconds.",
    503: "A service is unavailable; try again shortly.",
    504: "A service did not answer in time.",
    "default": "Any other error (503 unavailable, 504 timeout, 500 internal), in the same shape.",
}

_RETRY_AFTER = {
    "description": "Seconds to wait before trying again (also in the RetryInfo detail).",
    "schema": {"type": "integer", "minimum": 0},
}


class Rendition(BaseModel):
    size: int = Field(description="Nominal longest side: 1080, 640 or 150 (never upscaled).")
    width: int
    height: int
    url: str = Field(description="Public, immutable URL of the WebP rendition.")


class Media(BaseModel):
    id: str
    owner_id: str
    status: str = Field(description="MEDIA_STATUS_PENDING, _PROCESSING, _READY or _FAILED.")
    failure_reason: str = Field(description="Why processing failed (status FAILED), for a person to read.")
    content_type: str
    size_bytes: str
    width: int
    height: int
    blurhash: str = Field(description="A compact placeholder to show while the photo loads.")
    renditions: list[Rendition] = Field(description="Empty until the media is READY.")
    post_id: str
    create_time: str | None = None


class UploadGrant(BaseModel):
    media_id: str
    url: str = Field(description="POST a multipart form here: every `form_fields` entry, then the file as `file`.")
    form_fields: dict[str, str]
    object_key: str
    expire_time: str = Field(description="RFC 3339; upload before then.")


class Location(BaseModel):
    name: str = ""
    latitude: float = 0
    longitude: float = 0


class Post(BaseModel):
    id: str
    author_id: str
    caption: str
    hashtags: list[str]
    location: Location | None = None
    media_ids: list[str]
    media: list[Media] = Field(description="Each photo's status, size, blurhash and rendition URLs, in order.")
    state: str
    create_time: str
    update_time: str


class PostPage(BaseModel):
    items: list[Post] = Field(description="Newest first.")
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")


class FeedAuthor(BaseModel):
    id: str
    username: str
    display_name: str


class FeedMedia(BaseModel):
    id: str
    status: str = Field(description="PENDING, PROCESSING, READY or FAILED; show the blurhash until READY.")
    width: int
    height: int
    blurhash: str
    renditions: list[Rendition] = Field(description="Empty until the photo is READY.")


class FeedItem(BaseModel):
    post_id: str
    author: FeedAuthor
    caption: str
    hashtags: list[str]
    media: list[FeedMedia]
    create_time: str


class FeedPage(BaseModel):
    items: list[FeedItem] = Field(description="Newest first: the people you follow, and yourself.")
    next_page_token: str = Field(
        description="Pass as `page_token` for the next page; empty at the end. Stable while new posts arrive."
    )
