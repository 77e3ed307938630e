"""The post JSON (hand-written for speed) matches the generic protobuf rendering field for field, with
media statuses in the one wire vocabulary; the feed page's bytes (encoded without FastAPI) are the bytes
FastAPI sends for the FeedPage resource."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.responses import JSONResponse

from gateway.render import MEDIA_STATUSES, feed_item_json, feed_page_body, post_resource_json, to_json
from gateway.resources import FeedPage
from glimpse.engagement.v1 import engagement_pb2
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


def _as_fastapi_sends(page: dict[str, Any]) -> bytes:
    """What a route declaring response_model=FeedPage answers for `page`: validated, dumped, encoded."""
    return JSONResponse(FeedPage.model_validate(page).model_dump(mode="json")).body


def _with_engagement(item: feed_pb2.FeedItem) -> feed_pb2.FeedItem:
    engaged = feed_pb2.FeedItem()
    engaged.CopyFrom(item)
    engaged.engagement.CopyFrom(
        engagement_pb2.PostEngagement(
            post_id=item.id, like_count=2**40, comment_count=3, viewer_has_liked=True, viewer_has_saved=False
        )
    )
    return engaged


def _hostile_text() -> feed_pb2.FeedItem:
    """Text a caption or name may hold and a JSON encoder must escape or pass through alike."""
    item = _full_item()
    item.caption = 'quote " backslash \\ newline \n tab \t \x1f line-sep \u2028 café ☕ 😀 </script>'
    item.author.display_name = "Zoë \u0007"
    item.location.name = "\u00e9\u0301"
    return item


def test_the_feed_page_is_the_bytes_fastapi_sends_for_the_resource() -> None:
    items = [_full_item(), _with_engagement(_full_item()), _whole_seconds(), _hostile_text()]
    for item in items[2:]:
        item.author.SetInParent()  # the resource requires an author (feed_svc always sets one)
    response = feed_pb2.GetHomeFeedResponse(items=items, next_page_token="tok/+=")
    page = {"items": [feed_item_json(item) for item in items], "next_page_token": "tok/+="}
    assert feed_page_body(response) == _as_fastapi_sends(page)
    empty = feed_pb2.GetHomeFeedResponse()
    assert feed_page_body(empty) == _as_fastapi_sends({"items": [], "next_page_token": ""})


def test_a_post_rendered_again_carries_its_current_content_and_engagement() -> None:
    # Posts are encoded once and reused: a repeat, another viewer's engagement, an edit and the engagement
    # going missing must each still give exactly what FastAPI would send.
    first = _with_engagement(_full_item())
    liked_by_more = _with_engagement(_full_item())
    liked_by_more.engagement.like_count += 1
    liked_by_more.engagement.viewer_has_saved = True
    edited = _with_engagement(_full_item())
    edited.caption = "Golden hour, edited #sunset"
    edited.update_time.FromNanoseconds(1_795_242_999_000_000_000)
    for item in [first, first, liked_by_more, edited, _full_item(), first]:
        response = feed_pb2.GetHomeFeedResponse(items=[item, item], next_page_token="next")
        page = {"items": [feed_item_json(item)] * 2, "next_page_token": "next"}
        assert feed_page_body(response) == _as_fastapi_sends(page)


def test_floats_of_the_feed_page_keep_their_value() -> None:
    # The one spelling that differs: orjson writes 1e-05 as 0.00001; the number is the same.
    item = _full_item()
    item.location.latitude, item.location.longitude = 1e-05, -179.99999999999997
    response = feed_pb2.GetHomeFeedResponse(items=[item])
    sent = json.loads(_as_fastapi_sends({"items": [feed_item_json(item)], "next_page_token": ""}))
    assert json.loads(feed_page_body(response)) == sent


@pytest.mark.parametrize("missing", ["author", "create_time", "update_time"])
def test_an_item_the_resource_would_refuse_is_an_error_not_a_partial_page(missing: str) -> None:
    item = _full_item()
    item.ClearField(missing)
    with pytest.raises(ValueError, match="lacks"):
        post_resource_json(item)
    with pytest.raises(ValueError, match="lacks"):
        feed_page_body(feed_pb2.GetHomeFeedResponse(items=[_full_item(), item]))
