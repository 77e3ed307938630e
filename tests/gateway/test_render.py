"""The feed's hand-written JSON matches the generic protobuf rendering field for field."""

from __future__ import annotations

import pytest

from gateway.render import feed_item_json, to_json
from glimpse.feed.v1 import feed_pb2


def _full_item() -> feed_pb2.FeedItem:
    item = feed_pb2.FeedItem(
        post_id=2**62 + 3,
        caption="Golden hour #sunset",
        hashtags=["sunset"],
        author=feed_pb2.FeedAuthor(id=2**60, username="ada.l", display_name="Ada"),
        media=[
            feed_pb2.FeedMedia(
                id=9,
                status="READY",
                width=1080,
                height=810,
                blurhash="LUCahsoy0XWs",
                renditions=[feed_pb2.FeedRendition(size=150, width=150, height=112, url="http://cdn/150.webp")],
            ),
            feed_pb2.FeedMedia(id=10, status="PROCESSING"),
        ],
    )
    item.create_time.FromNanoseconds(1_795_242_496_903_966_000)
    return item


def _whole_seconds() -> feed_pb2.FeedItem:
    item = feed_pb2.FeedItem(post_id=1)
    item.create_time.FromNanoseconds(1_795_242_496_000_000_000)
    return item


def _empty_author() -> feed_pb2.FeedItem:
    item = feed_pb2.FeedItem(post_id=1)
    item.author.SetInParent()
    return item


@pytest.mark.parametrize("item", [feed_pb2.FeedItem(), _full_item(), _whole_seconds(), _empty_author()])
def test_feed_item_json_is_to_json(item: feed_pb2.FeedItem) -> None:
    assert feed_item_json(item) == to_json(item)
