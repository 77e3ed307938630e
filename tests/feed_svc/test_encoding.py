"""feed_svc.encoding: responses assembled from cached item encodings are the bytes protobuf itself
would produce for the same messages, so clients parse exactly what the messages say."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from feed_svc.encoding import items_response, varint
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.post.v1 import post_pb2


def item(post_id: int, *, caption: str = "Golden hour #glimpse", location: bool = False) -> feed_pb2.FeedItem:
    moment = Timestamp(seconds=1_790_000_000, nanos=123_000_000)
    message = feed_pb2.FeedItem(
        id=post_id,
        author=feed_pb2.FeedAuthor(id=7 << 40, username="ada", display_name="Ada L."),
        caption=caption,
        hashtags=["glimpse"],
        media=[
            feed_pb2.FeedMedia(
                id=post_id + 1,
                status=2,
                width=3024,
                height=4032,
                blurhash="LEHV6nWB2yk8pyo0adR*.7kCMdnj",
                renditions=[
                    feed_pb2.FeedRendition(
                        size=s, width=s, height=s * 4 // 3, url=f"https://s3.example/{s}.webp?X=" + "a" * 300
                    )
                    for s in (1080, 640, 150)
                ],
            )
        ],
        create_time=moment,
        update_time=moment,
    )
    if location:
        message.location.CopyFrom(post_pb2.Location(name="Portland", latitude=45.5, longitude=-122.7))
    return message


def test_a_page_is_byte_for_byte_the_serialised_response():
    items = [item(1 << 50), item((1 << 50) + 9, location=True), item(3, caption="")]
    engagement = [
        engagement_pb2.PostEngagement(post_id=1 << 50, like_count=12, comment_count=3, viewer_has_liked=True),
        None,  # engagement_svc did not answer for it: served without
        engagement_pb2.PostEngagement(post_id=3),
    ]
    token = "eyJzIjoiZmVlZDo0MiIsImMiOnsiYmVmb3JlIjoxMjMsInNlcnZlZCI6MjB9fQ"
    expected = feed_pb2.GetHomeFeedResponse(next_page_token=token)
    for message, counts in zip(items, engagement, strict=True):
        added = expected.items.add()
        added.CopyFrom(message)
        if counts is not None:
            added.engagement.CopyFrom(counts)
    encoded = items_response([(m.SerializeToString(), e) for m, e in zip(items, engagement, strict=True)], token)
    assert encoded == expected.SerializeToString()
    parsed = feed_pb2.GetHomeFeedResponse.FromString(encoded)
    assert parsed == expected
    assert parsed.items[0].engagement.like_count == 12 and not parsed.items[1].HasField("engagement")
    assert parsed.items[2].HasField("engagement")


def test_the_same_framing_serves_batch_get_feed_items_and_empty_pages():
    message = item(5)
    batch = feed_pb2.BatchGetFeedItemsResponse(items=[message])
    assert items_response([(message.SerializeToString(), None)]) == batch.SerializeToString()
    assert items_response([]) == b"" == feed_pb2.GetHomeFeedResponse().SerializeToString()


def test_varints_match_protobuf():
    for value in (1, 127, 128, 300, 16_383, 16_384, 2**31, 2**63 - 1):
        assert varint(value) == feed_pb2.FeedAuthor(id=value).SerializeToString()[1:]  # after the field's key
    assert varint(0) == b"\x00"
