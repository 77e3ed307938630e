"""Protobuf -> JSON, in one place, so every response follows the same rules: snake_case names,
64-bit integers as strings (JavaScript loses precision above 2**53), timestamps in RFC 3339."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from cachetools import LRUCache
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.media.v1 import media_pb2

# The media status vocabulary on the wire: media.proto's MediaStatus without its MEDIA_STATUS_ prefix
# ("PENDING", "PROCESSING", "READY", "FAILED"). UNSPECIFIED is never sent: services always set a status.
MEDIA_STATUSES: Mapping[int, str] = {
    value.number: value.name.removeprefix("MEDIA_STATUS_")
    for value in media_pb2.MediaStatus.DESCRIPTOR.values
    if value.number != media_pb2.MEDIA_STATUS_UNSPECIFIED
}


def to_json(message: Message) -> dict[str, Any]:
    """The JSON object for `message`, with zero-valued fields included so clients see a stable shape."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def user_summary_json(user: graph_pb2.User | feed_pb2.FeedAuthor) -> dict[str, Any]:
    """A user as every summary shows them (resources.Author): post, comment and story authors,
    notification actors, story viewers, report snapshots. `avatar_url` is the 150 px picture, null
    when there is none."""
    return {
        "id": str(user.id),
        "username": user.username,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url if user.HasField("avatar_url") else None,
    }


def feed_item_json(item: feed_pb2.FeedItem) -> dict[str, Any]:
    """The JSON of a post, wherever it appears (feed, single post, profile grid, create/edit responses):
    `to_json(item)` with the media status spelled as in MEDIA_STATUSES, written out field by field: a
    feed page holds 20 items, and MessageToDict (pure Python, walking descriptors) took about a quarter
    of the gateway's CPU per feed read."""
    return _post(item, nulls=False)


def post_resource_json(item: feed_pb2.FeedItem) -> dict[str, Any]:
    """What a route declaring `response_model=Post` sends for `item`: `feed_item_json(item)` with an
    absent location or engagement as null, in the resource's field order, for routes that answer with
    bytes of their own (feed_page_body).

    Raises ValueError for an item without author or timestamps, which the resource requires: the same
    500 as FastAPI's response validation gives (feed_svc always sets them).
    """
    if not (item.HasField("author") and item.HasField("create_time") and item.HasField("update_time")):
        raise ValueError(f"feed item {item.id} lacks its author or a timestamp")
    return _post(item, nulls=True)


def feed_page_body(response: feed_pb2.GetHomeFeedResponse | feed_pb2.GetExploreFeedResponse) -> bytes:
    """The JSON bytes of a FeedPage resource for `response`, as FastAPI would send them (compact, UTF-8;
    tests/gateway/test_render.py checks the two agree) without its per-response validation and encoding
    (a sixth of the gateway's CPU per feed read, py-spy); each post's JSON but its engagement is encoded
    once and reused (_RenderedPosts). `response` is consumed: its items lose their engagement.

    Raises ValueError as post_resource_json does.
    """
    posts = b",".join([_RENDERED_POSTS.post_bytes(item) for item in response.items])
    return b'{"items":[' + posts + b'],"next_page_token":' + orjson.dumps(response.next_page_token) + b"}"


class _RenderedPosts:
    """Each post's encoded JSON without its engagement, by the post's own protobuf bytes.

    A post looks the same to every reader but its engagement (the viewer's like and save, counts that
    move with every like), so that part is encoded per response and the rest once. The key is the
    whole FeedItem (engagement cleared) as serialized, so any change (an edited caption, a finished
    rendition, a new presigned URL slot) is another key: an entry is never stale, it just stops being
    asked for. At most `capacity` posts, least recently used dropped first; an entry is about 3 KB
    (key and value; presigned rendition URLs are most of it), so about 6 MB.
    """

    def __init__(self, capacity: int) -> None:
        self._encoded: LRUCache[bytes, bytes] = LRUCache(maxsize=capacity)

    def post_bytes(self, item: feed_pb2.FeedItem) -> bytes:
        """post_resource_json(item), encoded; clears item's engagement."""
        if item.HasField("engagement"):
            engagement = orjson.dumps(_engagement(item.engagement))
            item.ClearField("engagement")
        else:
            engagement = b"null"
        key = item.SerializeToString()
        encoded = self._encoded.get(key)
        if encoded is None:
            rendered = post_resource_json(item)  # raises for an item the resource would refuse
            del rendered["engagement"]  # null here, and the resource's last field: appended below
            encoded = self._encoded[key] = orjson.dumps(rendered)[:-1]  # without the closing brace
        return encoded + b',"engagement":' + engagement + b"}"


_RENDERED_POSTS = _RenderedPosts(capacity=2048)


def _post(item: feed_pb2.FeedItem, *, nulls: bool) -> dict[str, Any]:
    """The post's JSON; an absent message field (they have presence) is left out, or null if `nulls`."""
    out: dict[str, Any] = {"id": str(item.id)}
    if item.HasField("author"):
        out["author"] = author = user_summary_json(item.author)
        if author["avatar_url"] is None and not nulls:
            del author["avatar_url"]  # as to_json leaves an unset optional field out
    out["caption"] = item.caption
    out["hashtags"] = list(item.hashtags)
    out["media"] = [
        {
            "id": str(media.id),
            "status": MEDIA_STATUSES.get(media.status, "UNSPECIFIED"),
            "width": media.width,
            "height": media.height,
            "blurhash": media.blurhash,
            "renditions": [
                {"size": r.size, "width": r.width, "height": r.height, "url": r.url} for r in media.renditions
            ],
        }
        for media in item.media
    ]
    if item.HasField("create_time"):
        out["create_time"] = item.create_time.ToJsonString()
    if item.HasField("location"):
        location = item.location
        out["location"] = {"name": location.name, "latitude": location.latitude, "longitude": location.longitude}
    elif nulls:
        out["location"] = None
    if item.HasField("update_time"):
        out["update_time"] = item.update_time.ToJsonString()
    # Left out when engagement_svc did not answer in time (the post is served anyway).
    if item.HasField("engagement"):
        out["engagement"] = _engagement(item.engagement)
    elif nulls:
        out["engagement"] = None
    return out


def _engagement(engagement: engagement_pb2.PostEngagement) -> dict[str, Any]:
    return {
        "post_id": str(engagement.post_id),
        "like_count": str(engagement.like_count),
        "comment_count": str(engagement.comment_count),
        "viewer_has_liked": engagement.viewer_has_liked,
        "viewer_has_saved": engagement.viewer_has_saved,
    }
