"""The gateway's JSON resources against the protobuf messages they render: the same fields with the JSON
types `gateway.render` gives them, and real responses of the live stack that validate against them."""

from __future__ import annotations

import types
import typing
from typing import Any

import httpx
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from pydantic import BaseModel, ValidationError

from gateway import resources
from gateway.render import feed_item_json
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.media.v1 import media_pb2
from glimpse.notification.v1 import notification_pb2
from glimpse.post.v1 import post_pb2
from glimpse.story.v1 import story_pb2
from tests.conftest import Account

# Each resource and the message it renders, with JSON names that differ from the message's field names
# (JSON name -> proto name); every other field must match one for one.
MIRRORS: dict[type[BaseModel], tuple[Descriptor, dict[str, str]]] = {
    resources.User: (graph_pb2.User.DESCRIPTOR, {}),
    resources.Session: (graph_pb2.AuthenticateUserResponse.DESCRIPTOR, {}),
    resources.FollowResult: (graph_pb2.FollowUserResponse.DESCRIPTOR, {}),
    resources.UnfollowResult: (graph_pb2.UnfollowUserResponse.DESCRIPTOR, {}),
    resources.Follow: (graph_pb2.Follow.DESCRIPTOR, {}),
    # Pages name their list `items` whatever the message calls it.
    resources.FollowPage: (graph_pb2.ListFollowersResponse.DESCRIPTOR, {"items": "follows"}),
    resources.UserPage: (graph_pb2.SearchUsersResponse.DESCRIPTOR, {"items": "users"}),
    resources.UploadGrant: (media_pb2.UploadGrant.DESCRIPTOR, {}),
    resources.Rendition: (feed_pb2.FeedRendition.DESCRIPTOR, {}),
    resources.Location: (post_pb2.Location.DESCRIPTOR, {}),
    resources.Author: (feed_pb2.FeedAuthor.DESCRIPTOR, {}),
    resources.Media: (feed_pb2.FeedMedia.DESCRIPTOR, {}),
    resources.Post: (feed_pb2.FeedItem.DESCRIPTOR, {}),
    resources.Engagement: (engagement_pb2.PostEngagement.DESCRIPTOR, {}),
    resources.FeedPage: (feed_pb2.GetHomeFeedResponse.DESCRIPTOR, {}),
    resources.FollowRequest: (graph_pb2.FollowRequest.DESCRIPTOR, {}),
    resources.FollowRequestPage: (graph_pb2.ListFollowRequestsResponse.DESCRIPTOR, {"items": "requests"}),
    resources.ApproveResult: (graph_pb2.ApproveFollowRequestResponse.DESCRIPTOR, {}),
    resources.DenyResult: (graph_pb2.DenyFollowRequestResponse.DESCRIPTOR, {}),
    resources.BlockResult: (graph_pb2.BlockUserResponse.DESCRIPTOR, {}),
    resources.UnblockResult: (graph_pb2.UnblockUserResponse.DESCRIPTOR, {}),
    resources.Block: (graph_pb2.Block.DESCRIPTOR, {}),
    resources.BlockPage: (graph_pb2.ListBlocksResponse.DESCRIPTOR, {"items": "blocks"}),
    resources.MuteResult: (graph_pb2.MuteUserResponse.DESCRIPTOR, {}),
    resources.UnmuteResult: (graph_pb2.UnmuteUserResponse.DESCRIPTOR, {}),
    resources.Mute: (graph_pb2.Mute.DESCRIPTOR, {}),
    resources.MutePage: (graph_pb2.ListMutesResponse.DESCRIPTOR, {"items": "mutes"}),
    resources.Report: (graph_pb2.Report.DESCRIPTOR, {}),
    resources.UnreadCount: (notification_pb2.GetUnreadCountResponse.DESCRIPTOR, {}),
    resources.ReadResult: (notification_pb2.MarkNotificationsReadResponse.DESCRIPTOR, {}),
    resources.NotificationSettings: (notification_pb2.NotificationSettings.DESCRIPTOR, {}),
    resources.Tag: (post_pb2.Tag.DESCRIPTOR, {}),
    resources.TagPage: (post_pb2.SearchTagsResponse.DESCRIPTOR, {"items": "tags"}),
    resources.ViewResult: (story_pb2.ViewStoryResponse.DESCRIPTOR, {}),
    resources.SessionSummary: (graph_pb2.Session.DESCRIPTOR, {}),
    resources.SessionPage: (graph_pb2.ListSessionsResponse.DESCRIPTOR, {"items": "sessions"}),
    resources.SessionRevoked: (graph_pb2.RevokeSessionResponse.DESCRIPTOR, {}),
    resources.PasswordChanged: (graph_pb2.ChangePasswordResponse.DESCRIPTOR, {}),
    resources.DeletionAccepted: (graph_pb2.DeleteUserResponse.DESCRIPTOR, {}),
}
# Resources that render no single message, and why.
NOT_MIRRORS = {
    resources.Resource: "the base class",
    resources.Health: "built by the gateway itself",
    resources.Readiness: "built by the gateway from grpc.health.v1 answers",
    resources.ErrorStatus: "the gateway's error shape, built from google.rpc.Status",
    resources.ErrorResponse: "the gateway's error shape, built from google.rpc.Status",
    resources.PostPage: "ListPosts' (or ListTagPosts') next_page_token around BatchGetFeedItems' items",
    resources.Notification: "a Notification message with its actors from graph_svc and its post from feed_svc",
    resources.NotificationPost: "a notification's post_id with the 150 px rendition feed_svc renders",
    resources.NotificationComment: "a notification's comment_id and comment_preview",
    resources.NotificationPage: "ListNotifications' token and unread count around rendered notifications",
    resources.Story: "a Story message with its author from graph_svc and its photo from media_svc",
    resources.StoryList: "ListStories' stories, each rendered as resources.Story",
    resources.TrayEntry: "a TrayEntry message with its author from graph_svc",
    resources.StoryTray: "GetStoryTray's entries, each rendered as resources.TrayEntry",
    resources.StoryViewer: "a StoryViewer message with its user from graph_svc",
    resources.StoryViewerPage: "ListStoryViewers' token and view count around rendered viewers",
}
_MODEL_OF = {descriptor.full_name: model for model, (descriptor, _) in MIRRORS.items()}
# The JSON type of each scalar as protobuf's JSON mapping renders it (64-bit integers as strings).
_SCALAR: dict[int, type] = {
    FieldDescriptor.TYPE_INT64: str,
    FieldDescriptor.TYPE_UINT64: str,
    FieldDescriptor.TYPE_SINT64: str,
    FieldDescriptor.TYPE_FIXED64: str,
    FieldDescriptor.TYPE_SFIXED64: str,
    FieldDescriptor.TYPE_INT32: int,
    FieldDescriptor.TYPE_UINT32: int,
    FieldDescriptor.TYPE_SINT32: int,
    FieldDescriptor.TYPE_FIXED32: int,
    FieldDescriptor.TYPE_SFIXED32: int,
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_STRING: str,
    FieldDescriptor.TYPE_BYTES: str,
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_FLOAT: float,
    FieldDescriptor.TYPE_ENUM: str,
}


def json_type(field: FieldDescriptor) -> Any:
    """The Python annotation a resource field must have to hold `field` as rendered."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return dict[json_type(key), json_type(value)]
    if field.message_type is None:
        single: Any = _SCALAR[field.type]
    elif field.message_type.full_name == "google.protobuf.Timestamp":
        single = str
    elif field.message_type.full_name == "google.protobuf.Struct":
        single = dict[str, Any]  # any JSON object
    else:
        single = _MODEL_OF.get(field.message_type.full_name, f"a resource mirroring {field.message_type.full_name}")
    return list[single] if field.is_repeated else single


def without_none(annotation: Any) -> Any:
    """`X` for `X | None` (a field with presence, which to_json leaves out when unset), else the annotation itself."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def test_every_resource_is_checked_against_its_message_or_says_why_not():
    declared = {
        value
        for value in vars(resources).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == resources.__name__
    }
    assert declared == set(MIRRORS) | set(NOT_MIRRORS)


# Fields of a message that its resource leaves out on purpose, with why.
WITHHELD: dict[type[BaseModel], set[str]] = {
    # For ranking only: Instagram shows a post's saves to nobody but its author (engagement.proto).
    resources.Engagement: {"save_count"},
}


@pytest.mark.parametrize("model", list(MIRRORS), ids=lambda m: m.__name__)
def test_a_resource_has_its_message_s_fields_with_their_json_types(model: type[BaseModel]):
    descriptor, renamed = MIRRORS[model]
    proto_name = {name: renamed.get(name, name) for name in model.model_fields}
    shown = sorted(set(descriptor.fields_by_name) - WITHHELD.get(model, set()))
    assert sorted(proto_name.values()) == shown, "field sets differ"
    for name, field in model.model_fields.items():
        proto_field = descriptor.fields_by_name[proto_name[name]]
        expected = json_type(proto_field)
        annotation = field.annotation
        if proto_field.has_presence and not proto_field.is_repeated:
            annotation = without_none(annotation)  # messages and optional fields: absent (null) is allowed
        assert annotation == expected, f"{model.__name__}.{name} is {field.annotation}, renders as {expected}"


def test_the_media_status_is_an_enum_in_the_openapi_document():
    schema = resources.Media.model_json_schema()["properties"]["status"]
    assert schema["enum"] == ["PENDING", "PROCESSING", "READY", "FAILED"]
    with pytest.raises(ValidationError):
        resources.Media.model_validate(
            {"id": "1", "status": "MEDIA_STATUS_READY", "width": 0, "height": 0, "blurhash": "", "renditions": []}
        )


def test_a_key_the_model_lacks_fails_validation():
    item = feed_pb2.FeedItem(id=1, author=feed_pb2.FeedAuthor(id=2))
    item.create_time.GetCurrentTime()
    item.update_time.GetCurrentTime()
    resources.Post.model_validate(feed_item_json(item))
    with pytest.raises(ValidationError, match="post_id"):
        resources.Post.model_validate({**feed_item_json(item), "post_id": "1"})


async def checked(response: httpx.Response, model: type[BaseModel], status: int = 200) -> dict[str, Any]:
    """The response body, after checking it strictly against `model` (the gateway already refused any key
    the model lacks on the way out: a drifted renderer is a 500 here)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    model.model_validate(body, strict=True)
    return body


@pytest.mark.usefixtures("fanout")
async def test_real_responses_validate_against_their_resources(http, make_account, upload_photo, new_username):
    name = new_username()
    credentials = {"username": name, "email": f"{name}@example.com", "password": "a long enough passphrase"}
    user = await checked(await http.post("/v1/users", json=credentials), resources.User, 201)
    session = await checked(
        await http.post("/v1/sessions", json={"login": name, "password": credentials["password"]}), resources.Session
    )
    me = {"Authorization": f"Bearer {session['access_token']}"}
    other: Account = await make_account()
    target = {"target_user_id": str(other.id)}
    await checked(await http.post("/v1/follow", json=target, headers=me), resources.FollowResult)
    await checked(await http.get(f"/v1/users/{user['id']}/following", headers=me), resources.FollowPage)
    await checked(await http.get("/v1/search/users", params={"q": name}, headers=me), resources.UserPage)
    await checked(await http.get(f"/v1/users/{name}"), resources.User)
    grant = {"content_type": "image/png", "size_bytes": 100}
    await checked(await http.post("/v1/media/upload-url", json=grant, headers=me), resources.UploadGrant, 201)
    media_id = str(await upload_photo(other))
    body = {"caption": "#checked", "media_ids": [media_id], "location": {"name": "Reed", "latitude": 45.5}}
    post = await checked(await http.post("/v1/posts", json=body, headers=other.headers), resources.Post, 201)
    await checked(await http.get(f"/v1/posts/{post['id']}", headers=me), resources.Post)
    await checked(await http.get(f"/v1/users/{other.id}/posts", headers=me), resources.PostPage)
    await checked(await http.get("/v1/feed", headers=me), resources.FeedPage)
    await checked(await http.delete(f"/v1/follow/{other.id}", headers=me), resources.UnfollowResult)
