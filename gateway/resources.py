"""The JSON resources the API returns, declared for the OpenAPI document and checked on the way out.

They mirror the protobuf messages as `gateway.render` renders them: 64-bit integers are strings,
timestamps are RFC 3339 strings, media statuses are MEDIA_STATUSES' names. tests/gateway/test_resources.py
checks each against its message, so neither can gain a field the other lacks.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from google.protobuf.descriptor import EnumDescriptor
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

import glimpse
from gateway.render import MEDIA_STATUSES
from glimpse.graph.v1 import graph_pb2
from glimpse.notification.v1 import notification_pb2

# The one description of a user summary's picture (User and Author).
AVATAR_URL = (
    "The profile picture: a 150 px square WebP at a public URL that changes whenever the picture does (so "
    "it may be cached as long as you like); null when there is none."
)


class Resource(BaseModel):
    # A key the model does not declare fails the response (a 500, logged) instead of being dropped in
    # silence: a renderer and its model that drift apart show up in the first test that calls the route.
    model_config = ConfigDict(extra="forbid")


class User(Resource):
    id: str = Field(description="64-bit user id, as a decimal string.", examples=["7240392310784001"])
    username: str = Field(description="Lower-case, 3-30 characters of [a-z0-9._].", examples=["ada.l"])
    display_name: str
    bio: str
    follower_count: str = Field(description="64-bit count, as a decimal string.", examples=["12"])
    following_count: str = Field(description="64-bit count, as a decimal string.", examples=["3"])
    create_time: str | None = Field(None, description="RFC 3339.", examples=["2024-05-01T12:00:00.123Z"])
    is_private: bool = Field(
        description="Only the owner and approved followers see a private account's posts (its existing ones "
        "included) and its follower and following lists; following it sends a request."
    )
    website: str = Field(
        description="An http(s) URL as stored (normalised), or empty.", examples=["https://ada.example"]
    )
    avatar_url: str | None = Field(None, description=AVATAR_URL)
    avatar_large_url: str | None = Field(
        None, description="The same picture as a 320 px square (for the profile page); null when there is none."
    )


def wire_words(enum: EnumDescriptor) -> Mapping[int, str]:
    """A wire enum's values as the API spells them: lower-case, without the prefix every value carries
    (FOLLOW_STATE_REQUESTED -> "requested", REPORT_RESOLUTION_UNSPECIFIED -> "unspecified")."""
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return {value.number: value.name.removeprefix(prefix).lower() for value in enum.values}


class OneOf:
    """A JSON string field that must be one of a wire enum's words, documented as an enum:
    `Annotated[str, *OneOf(words, description)]`. "unspecified" is allowed only where the API sends it."""

    def __init__(self, words: Mapping[int, str], description: str, *, unspecified: bool = False) -> None:
        self.allowed = [w for n, w in words.items() if n != 0 or unspecified]
        self.description = description

    def __iter__(self) -> Iterator[Any]:
        yield AfterValidator(self._check)
        yield WithJsonSchema({"type": "string", "enum": self.allowed, "description": self.description})

    def _check(self, value: str) -> str:
        if value not in self.allowed:
            raise PydanticCustomError("word", "must be one of {allowed}", {"allowed": ", ".join(self.allowed)})
        return value


FOLLOW_STATES = wire_words(graph_pb2.FollowState.DESCRIPTOR)
_FOLLOW_STATE = OneOf(
    FOLLOW_STATES, "following: the caller follows the target; requested: the target is private and was asked."
)


class Session(Resource):
    access_token: str = Field(
        description="Send as `Authorization: Bearer <access_token>`. Refused once it expires or its session ends "
        "(logged out, revoked, password changed, refresh token reused, account deleted; within 5 seconds)."
    )
    access_token_expire_time: str = Field(description="RFC 3339; 15 minutes after it was issued.")
    refresh_token: str = Field(
        description="Exchange at `POST /v1/sessions/refresh` for a new pair, once: each use returns a new one, and "
        "using an old one again ends the session (401 REFRESH_TOKEN_REUSED)."
    )
    refresh_token_expire_time: str = Field(description="RFC 3339; 7 days after it was issued.")
    user: User
    session_id: str = Field(description="The session (one login on one device) both tokens belong to.")


class SessionSummary(Resource):
    id: str = Field(description="64-bit session id, as a decimal string.")
    device_label: str = Field(description="The User-Agent of the login (at most 200 characters).")
    create_time: str = Field(description="RFC 3339: the login.")
    last_use_time: str = Field(description="RFC 3339: the login or the latest refresh.")
    expire_time: str = Field(description="RFC 3339: when its refresh token expires unless used before.")
    current: bool = Field(description="The session of the access token of this request.")


class SessionPage(Resource):
    items: list[SessionSummary] = Field(description="Your live sessions, newest first.")
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")


class SessionRevoked(Resource):
    revoked: bool = Field(description="False when the session had already ended: nothing changed.")


class PasswordChanged(Resource):
    revoked_session_count: int = Field(description="How many of your other sessions were ended.")


class DeletionAccepted(Resource):
    username_release_time: str = Field(
        description="RFC 3339: from then on (30 days by default) someone else may register your username."
    )


class FollowResult(Resource):
    created: bool = Field(
        description="False when the caller already followed (or had asked to follow) the target: nothing changed."
    )
    target: User
    state: Annotated[str, *_FOLLOW_STATE]


class UnfollowResult(Resource):
    deleted: bool = Field(
        description="Whether a follow, or a pending request to follow, was removed (false: nothing changed)."
    )


class Follow(Resource):
    user: User
    create_time: str = Field(description="When the follow began, RFC 3339.")


class FollowPage(Resource):
    items: list[Follow] = Field(description="Newest follow first.")
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")


class UserPage(Resource):
    items: list[User]
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")


class Health(Resource):
    status: str = Field(examples=["ok"])


class Readiness(Resource):
    status: str = Field(examples=["ready"])
    upstreams: dict[str, str] = Field(
        description="Each upstream service's grpc.health.v1 status.", examples=[{"graph": "SERVING"}]
    )


# Reasons any route may give, whichever service answers: the mesh's (a status code's name when nothing
# more specific applies; database, caller and token failures) and the gateway's own. Each service's own
# reasons are its proto's `ErrorReason` enum. tests/test_error_reasons.py keeps both true to the code.
GENERIC_ERROR_REASONS: Mapping[str, str] = {
    "INVALID_ARGUMENT": "the request is invalid; the BadRequest detail names the fields",
    "ALREADY_EXISTS": "it already exists",
    "PERMISSION_DENIED": "the caller may not do this",
    "UNAUTHENTICATED": "the caller is not signed in",
    "RESOURCE_EXHAUSTED": "a limit was reached",
    "UNAVAILABLE": "a service is unavailable; retry shortly",
    "DATABASE_UNAVAILABLE": "the database is unavailable; retry shortly",
    "NO_CALLER": "the call carried no signed-in user",
    "TOKEN_MISSING": "no `Authorization: Bearer` token was sent",
    "TOKEN_INVALID": "the token is not valid; log in again",
    "TOKEN_EXPIRED": "the token has expired; refresh it or log in again",
    "TOKEN_WRONG_KIND": "a refresh token where an access token is needed, or the reverse",
    "RATE_LIMITED": "too many requests; retry after `Retry-After` seconds",
    "RATE_LIMITS_UNAVAILABLE": "rate limits cannot be checked, so the action is refused; retry shortly",
    "UPSTREAM_NOT_READY": "/readyz: an upstream service is not serving",
    "ROUTE_NOT_FOUND": "no route matches the method and path",
    "METHOD_NOT_ALLOWED": "the path exists but not with this method",
    "BODY_TOO_LARGE": "the request body is above the gateway's limit",
}


def _service_catalogues() -> dict[str, tuple[str, ...]]:
    """Every service proto's `ErrorReason` enum, by proto package, as the reason strings it sends
    (without ERROR_REASON_): found in the generated package, so a new service's catalogue is listed
    without an edit here (tests/test_error_reasons.py fails for a service proto without one)."""
    catalogues = {}
    # The generated folders have no __init__.py (namespace packages), which pkgutil does not walk.
    names = {
        ".".join(("glimpse", *path.relative_to(root).with_suffix("").parts))
        for root in map(Path, glimpse.__path__)
        for path in root.rglob("*_pb2.py")
    }
    for name in sorted(names):
        module = importlib.import_module(name)
        enum = module.DESCRIPTOR.enum_types_by_name.get("ErrorReason")
        if module.DESCRIPTOR.services_by_name and enum is not None:
            catalogues[module.DESCRIPTOR.package] = tuple(
                value.name.removeprefix("ERROR_REASON_") for value in enum.values if value.number != 0
            )
    return dict(sorted(catalogues.items()))


SERVICE_ERROR_REASONS: Mapping[str, tuple[str, ...]] = _service_catalogues()


def _reasons_description() -> str:
    services = "; ".join(
        f"{package}: {', '.join(reasons) or '(none of its own)'}" for package, reasons in SERVICE_ERROR_REASONS.items()
    )
    generic = "; ".join(f"{reason} ({meaning})" for reason, meaning in GENERIC_ERROR_REASONS.items())
    return (
        'google.rpc details: {"type": "ErrorInfo", "reason", "domain", "metadata"}, '
        '{"type": "BadRequest", "field_violations": [{"field", "description"}]} and '
        '{"type": "RetryInfo", "retry_delay": "12s"}. '
        "An ErrorInfo `reason` is a stable name to switch on. Each service's reasons are its proto's "
        "`ErrorReason` enum (proto/glimpse/<service>/v1/<service>.proto, one line on each, without the "
        f"ERROR_REASON_ prefix): {services}. Any route may also give: {generic}."
    )


class ErrorStatus(Resource):
    code: str = Field(description="The gRPC status code name.", examples=["NOT_FOUND"])
    message: str = Field(description="What went wrong, for a person to read.")
    details: list[dict[str, Any]] = Field(description=_reasons_description())


class ErrorResponse(Resource):
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


def _known_media_status(value: str) -> str:
    if value not in _MEDIA_STATUS_NAMES:
        raise PydanticCustomError("media_status", "is not a media status: {value}", {"value": value})
    return value


_MEDIA_STATUS_NAMES = frozenset(MEDIA_STATUSES.values())

MediaStatus = Annotated[
    str,
    AfterValidator(_known_media_status),
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(MEDIA_STATUSES.values()),
            "description": "PENDING (not uploaded yet), PROCESSING (renditions being made), READY or FAILED; "
            "show the blurhash until READY.",
        }
    ),
]


class Rendition(Resource):
    size: int = Field(description="Nominal longest side: 1080, 640 or 150 (never upscaled).")
    width: int
    height: int
    url: str = Field(
        description=(
            "Signed, time-limited URL of the WebP rendition: it works for at least 15 minutes and at most"
            " 1 hour after this response (the bound on how long someone who is no longer allowed to see the"
            " photo can fetch it), and is the same for every viewer within a 30-minute slot, so caches"
            " share it. Fetch it as is (the query string is the signature); for a fresh URL, read the post"
            " again. Its response's `Expires` header says when it stops working."
        )
    )


class UploadGrant(Resource):
    media_id: str
    url: str = Field(description="POST a multipart form here: every `form_fields` entry, then the file as `file`.")
    form_fields: dict[str, str]
    object_key: str
    expire_time: str = Field(description="RFC 3339; upload before then.")


class Location(Resource):
    name: str = ""
    latitude: float = 0
    longitude: float = 0


class Author(Resource):
    id: str
    username: str
    display_name: str
    avatar_url: str | None = Field(None, description=AVATAR_URL)


class Media(Resource):
    id: str
    status: MediaStatus
    width: int = Field(description="Pixels, once known (0 until the photo is processed).")
    height: int = Field(description="Pixels, once known (0 until the photo is processed).")
    blurhash: str = Field(description="A compact placeholder to show while the photo loads.")
    renditions: list[Rendition] = Field(description="Empty until the photo is READY.")


class Engagement(Resource):
    post_id: str = Field(description="The post these counts are of.")
    like_count: str = Field(description="64-bit count, as a decimal string: exact.", examples=["12"])
    comment_count: str = Field(
        description="64-bit count of live comments and replies, as a decimal string.", examples=["3"]
    )
    viewer_has_liked: bool
    viewer_has_saved: bool


class Post(Resource):
    """A post as every route renders it: the feed, a single post, the profile grid and the responses to
    creating and editing one."""

    id: str = Field(description="64-bit post id, as a decimal string.", examples=["7240392310784001"])
    author: Author
    caption: str
    hashtags: list[str] = Field(description="Lower-case, without '#', in order of first appearance.")
    media: list[Media] = Field(description="Each photo's status, size, blurhash and rendition URLs, in order.")
    create_time: str = Field(description="RFC 3339.")
    location: Location | None = Field(None, description="Absent (null) when the post has no location.")
    update_time: str = Field(description="RFC 3339: the last caption edit, or create_time.")
    engagement: Engagement | None = Field(
        None,
        description="Counts and the caller's own like/save state, read fresh for every response; absent "
        "only when the engagement service did not answer in time (the post is served without counts).",
    )


class PostPage(Resource):
    items: list[Post] = Field(description="Newest first.")
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")


class FeedPage(Resource):
    items: list[Post] = Field(
        description="Newest first, or ranked (`order=ranked`): the people you follow, and yourself."
    )
    next_page_token: str = Field(
        description="Pass as `page_token` for the next page; empty at the end. Stable while new posts arrive."
    )


# Privacy and safety (gateway/routes/privacy.py).

_NEXT = "Pass as `page_token` for the next page; empty on the last page."


class FollowRequest(Resource):
    user: User = Field(description="Who asked to follow you.")
    create_time: str = Field(description="When they asked, RFC 3339.")


class FollowRequestPage(Resource):
    items: list[FollowRequest] = Field(description="Newest request first.")
    next_page_token: str = Field(description=_NEXT)


class ApproveResult(Resource):
    approved: bool = Field(description="False when they already followed you (approved before): nothing changed.")
    follower: User


class DenyResult(Resource):
    denied: bool = Field(description="False when there was no pending request from that user: nothing changed.")


class BlockResult(Resource):
    created: bool = Field(description="False when you already blocked the user: nothing changed.")


class UnblockResult(Resource):
    deleted: bool = Field(description="False when you did not block the user: nothing changed.")


class Block(Resource):
    user: User
    create_time: str = Field(description="When you blocked them, RFC 3339.")


class BlockPage(Resource):
    items: list[Block] = Field(description="Newest block first.")
    next_page_token: str = Field(description=_NEXT)


class MuteResult(Resource):
    created: bool = Field(description="False when you already muted the user: nothing changed.")


class UnmuteResult(Resource):
    deleted: bool = Field(description="False when you did not mute the user: nothing changed.")


class Mute(Resource):
    user: User
    create_time: str = Field(description="When you muted them, RFC 3339.")


class MutePage(Resource):
    items: list[Mute] = Field(description="Newest mute first.")
    next_page_token: str = Field(description=_NEXT)


REPORT_SUBJECT_TYPES = wire_words(graph_pb2.ReportSubjectType.DESCRIPTOR)
REPORT_REASONS = wire_words(graph_pb2.ReportReason.DESCRIPTOR)
REPORT_STATES = wire_words(graph_pb2.ReportState.DESCRIPTOR)
REPORT_RESOLUTIONS = wire_words(graph_pb2.ReportResolution.DESCRIPTOR)
REPORT_REASON = OneOf(REPORT_REASONS, "Why: one of a fixed list.")


class Report(Resource):
    id: str = Field(description="64-bit report id, as a decimal string.")
    reporter_id: str = Field(description="You.")
    subject_type: Annotated[str, *OneOf(REPORT_SUBJECT_TYPES, "What was reported.")]
    subject_id: str = Field(description="The post, comment or user id, as a decimal string.")
    reported_user_id: str = Field(description="The account responsible: the author, or the user reported.")
    reason: Annotated[str, *REPORT_REASON]
    details: str
    snapshot: dict[str, Any] = Field(
        description="The content as you saw it when you reported it (kept as evidence whatever happens to it)."
    )
    state: Annotated[str, *OneOf(REPORT_STATES, "open until an operator resolves it, then resolved.")]
    resolution: Annotated[
        str,
        *OneOf(REPORT_RESOLUTIONS, "unspecified while open; then action_taken or no_violation.", unspecified=True),
    ]
    resolution_note: str
    create_time: str = Field(description="RFC 3339.")
    resolve_time: str | None = Field(None, description="RFC 3339; null while open.")


# The notification types as the API spells them ("like", "follow_request", ...).
NOTIFICATION_TYPES = wire_words(notification_pb2.NotificationType.DESCRIPTOR)
_NOTIFICATION_TYPE = OneOf(
    NOTIFICATION_TYPES,
    "follow (grouped), follow_request, follow_accepted, like (grouped per post), comment, reply or mention.",
)


class NotificationPost(Resource):
    id: str = Field(description="64-bit post id, as a decimal string.")
    thumbnail_url: str | None = Field(description="The post's first photo at 150 px (WebP); null until it is ready.")


class NotificationComment(Resource):
    id: str = Field(description="64-bit comment id, as a decimal string.")
    text: str = Field(description="The comment's first 100 characters.")


class Notification(Resource):
    id: str = Field(
        description="The id of its most recent activity (64-bit, time-ordered, as a decimal string): what "
        "`up_to_id` and the order compare. A group that gains or loses someone gets another id."
    )
    group_key: str = Field(description="Stable for the notification's whole life: replace the one with the same key.")
    type: Annotated[str, *_NOTIFICATION_TYPE]
    actors: list[Author] = Field(description="Up to 3 of the people who acted, most recent first.")
    actor_count: str = Field(
        description="Exact number of distinct people (1 unless grouped), as a decimal string.", examples=["12"]
    )
    post: NotificationPost | None = Field(description="The post it is about; null for follows and requests.")
    comment: NotificationComment | None = Field(description="The comment or reply; null when none.")
    create_time: str = Field(description="RFC 3339: its first activity.")
    update_time: str = Field(description="RFC 3339: its last change.")
    unread: bool


class NotificationPage(Resource):
    items: list[Notification] = Field(description="Newest first.")
    next_page_token: str = Field(description="Pass as `page_token` for the next page; empty on the last page.")
    unread_count: str = Field(description="Unread notifications (a group counts once), as a decimal string.")


class UnreadCount(Resource):
    unread_count: str = Field(description="Unread notifications (a group counts once), as a decimal string.")
    last_sequence: str = Field(
        description="The position of the inbox's last change: the `id` of the stream's latest event."
    )


class ReadResult(Resource):
    unread_count: str = Field(description="Unread notifications after marking, as a decimal string.")


class NotificationSettings(Resource):
    follow: bool = Field(description="Someone started following you.")
    follow_request: bool = Field(description="Someone asked to follow your private account.")
    follow_accepted: bool = Field(description="A private account accepted your request.")
    like: bool = Field(description="Someone liked your post.")
    comment: bool = Field(description="Someone commented on your post.")
    reply: bool = Field(description="Someone replied to your comment.")
    mention: bool = Field(description="Someone mentioned you in a caption or a comment.")


# Discovery (gateway/routes/discovery.py).


class Tag(Resource):
    name: str = Field(
        description="The hashtag without '#', in its one spelling: Unicode NFKC, case folded (#Café and "
        "#CAFÉ are the tag café).",
        examples=["café"],
    )
    post_count: str = Field(
        description="Live posts carrying it, exact, as a decimal string: every author's, those you may not "
        "see (private accounts you do not follow) included.",
        examples=["12"],
    )


class TagPage(Resource):
    items: list[Tag] = Field(description="Most used first, then the oldest tag first.")
    next_page_token: str = Field(description=_NEXT)


# Stories (gateway/routes/stories.py).


class Story(Resource):
    id: str = Field(description="64-bit story id, as a decimal string.", examples=["7240392310784001"])
    author: Author | None = Field(description="The story's author (null if the account no longer exists).")
    media: Media | None = Field(
        description="The photo: 1080 px for the full-screen view, 150 px for the ring; PROCESSING until its "
        "renditions are ready (null only once the photo is gone)."
    )
    create_time: str = Field(description="RFC 3339.")
    expire_time: str = Field(description="RFC 3339: 24 hours after create_time; never served after it.")
    viewed: bool = Field(description="Whether you viewed it (always true for your own stories).")


class StoryList(Resource):
    items: list[Story] = Field(description="The user's active stories, oldest first.")


class TrayEntry(Resource):
    author: Author
    story_count: int = Field(description="The author's active stories.")
    latest_story_time: str = Field(description="RFC 3339: when their newest active story was shared.")
    has_unseen: bool = Field(description="Whether one of them is not viewed by you yet (false for your own).")


class StoryTray(Resource):
    items: list[TrayEntry] = Field(
        description="You first (if you have active stories), then the people you follow with active stories: "
        "those with unseen stories first, then by most recent story. Muted and blocked accounts are left out."
    )


class ViewResult(Resource):
    story_id: str
    viewed: bool


class StoryViewer(Resource):
    user: Author
    view_time: str = Field(description="RFC 3339: their first view.")


class StoryViewerPage(Resource):
    items: list[StoryViewer] = Field(description="Newest view first.")
    next_page_token: str = Field(description=_NEXT)
    view_count: str = Field(description="Distinct viewers of the story, exact, as a decimal string.")
