"""The post JSON (hand-written for speed) matches the generic protobuf rendering field for field, with
media statuses in the one wire vocabulary."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.render import MEDIA_STATUSES, feed_item_json, to_json
from glimpse.feed.v1 import feed_pb2
from glimpse.media.v1 import media_pb2
from glimpse.post.v1 import post_pb2


def _full_item() -> feed_pb2.FeedItem:
    item = feed_pb2.FeedItem(
        id=2**62 + 3,
        caption="Golden hour #sunset",
        hashtags=["sunset"],
        author=feed_pb2.FeedAuthor(id=2**60, username="ada.l", display_name="Ada"),
        media=[
            feed_pb2.FeedMedia(
                id=9,
                status=media_pb2.MEDIA_STATUS_READY,
                width=1080,
                height=810,
                blurhash="LUCahsoy0XWs",
                renditions=[feed_pb2.FeedRendition(size=150, width=150, height=112, url="http://cdn/150.webp")],
            ),
            feed_pb2.FeedMedia(id=10, status=media_pb2.MEDIA_STATUS_PROCESSING),
            feed_pb2.FeedMedia(id=11, status=media_pb2.MEDIA_STATUS_FAILED),
            feed_pb2.FeedMedia(id=12, status=media_pb2.MEDIA_STATUS_PENDING),
        ],
        location=post_pb2.Location(name="Reed College", latitude=45.48, longitude=-122.63),
    )
    item.create_time.FromNanoseconds(1_795_242_496_903_966_000)
    item.update_time.FromNanoseconds(1_795_242_596_000_000_000)
    return item


def _whole_seconds() -> feed_pb2.FeedItem:
    item = feed_pb2.FeedItem(id=1)
    item.create_time.FromNanoseconds(1_795_242_496_000_000_000)
    item.update_time.FromNanoseconds(1_795_242_496_000_000_000)
    return item


def _empty_author_and_location() -> feed_pb2.FeedItem:
    item = feed_pb2.FeedItem(id=1)
    item.author.SetInParent()
    item.location.SetInParent()
    return item


def _on_the_wire(rendered: dict[str, Any]) -> dict[str, Any]:
    """to_json's output with each media status named as the API names it (no MEDIA_STATUS_ prefix)."""
    for media in rendered.get("media", []):
        media["status"] = media["status"].removeprefix("MEDIA_STATUS_")
    return rendered


@pytest.mark.parametrize(
    "item", [feed_pb2.FeedItem(id=5), _full_item(), _whole_seconds(), _empty_author_and_location()]
)
def test_feed_item_json_is_to_json(item: feed_pb2.FeedItem) -> None:
    assert feed_item_json(item) == _on_the_wire(to_json(item))


def test_media_statuses_are_the_proto_enum_without_its_prefix_or_unspecified() -> None:
    assert sorted(MEDIA_STATUSES.values()) == ["FAILED", "PENDING", "PROCESSING", "READY"]
    for number, name in MEDIA_STATUSES.items():
        assert media_pb2.MediaStatus.Name(number) == f"MEDIA_STATUS_{name}"
