"""FeedService responses as protobuf wire bytes, assembled from each item's encoding made once.

A cached item is serialised when it is built (feed_svc.hydration); a response is then the items'
bytes, each followed by its viewer's `engagement` field, framed as the response's repeated `items`.
Protobuf allows a message's fields in any order and a length-delimited field is its tag, its length
and its bytes, so this is exactly what serialising the response message would produce, without
copying every cached item into a new message and serialising it again for every call.
(tests/feed_svc/test_encoding.py checks the bytes against the message-built response.)
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import Descriptor

from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2

_LENGTH_DELIMITED = 2
_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def _tag(message: Descriptor, field: str) -> bytes:
    """The key of a length-delimited field (a single byte for field numbers up to 15)."""
    number = message.fields_by_name[field].number
    return varint(number << 3 | _LENGTH_DELIMITED)


def varint(value: int) -> bytes:
    """`value` (>= 0) as a protobuf base-128 varint."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:  # an item's length: every item of every page
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ITEMS = _tag(feed_pb2.GetHomeFeedResponse.DESCRIPTOR, "items")
_NEXT_PAGE_TOKEN = _tag(feed_pb2.GetHomeFeedResponse.DESCRIPTOR, "next_page_token")
_ENGAGEMENT = _tag(feed_pb2.FeedItem.DESCRIPTOR, "engagement")


def items_response(
    items: Sequence[tuple[bytes, engagement_pb2.PostEngagement | None]], next_page_token: str = ""
) -> bytes:
    """The encoding of a GetHomeFeedResponse (or, without a token, a BatchGetFeedItemsResponse: both
    carry their items in field 1) whose items are the encoded FeedItems given, each with its
    `engagement` set when one is given."""
    parts: list[bytes] = []
    for encoded, engagement in items:
        if engagement is None:
            parts += (_ITEMS, varint(len(encoded)), encoded)
            continue
        # The engagement field is appended as parts of its own: joining it onto the item would copy
        # the item's kilobyte or two once more per item.
        field = engagement.SerializeToString()
        head = varint(len(field))
        size = len(encoded) + len(_ENGAGEMENT) + len(head) + len(field)
        parts += (_ITEMS, varint(size), encoded, _ENGAGEMENT, head, field)
    if next_page_token:
        token = next_page_token.encode()
        parts += (_NEXT_PAGE_TOKEN, varint(len(token)), token)
    return b"".join(parts)
