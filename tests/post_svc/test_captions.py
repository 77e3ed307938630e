from __future__ import annotations

import pytest

from mesh.errors import InvalidArgument
from post_svc.captions import CAPTION_MAX, check_caption, check_location, hashtags_of, mentions_of


def test_hashtags_are_lower_case_unique_in_order_and_unicode():
    caption = "Sunset at #Reed with #Friends! #reed again, #café_2 and #日本. not a#tag, ## nor #"
    assert hashtags_of(caption) == ["reed", "friends", "café_2", "日本"]


def test_mentions_are_read_like_usernames_for_posts_created():
    # PostCreated.mentioned_usernames carries these; engagement_svc tells the users who exist.
    assert mentions_of("Dinner with @Ada and @bob.l. (cc ada@example.com, @ada again, @x)") == ["ada", "bob.l"]


def test_caption_limits():
    assert check_caption("x" * CAPTION_MAX) == "x" * CAPTION_MAX
    with pytest.raises(InvalidArgument, match="at most 2200"):
        check_caption("x" * (CAPTION_MAX + 1))
    with pytest.raises(InvalidArgument, match="30 hashtags"):
        check_caption(" ".join(f"#t{i}" for i in range(31)))


def test_locations():
    assert check_location("", 0, 0) is None
    assert check_location(" Portland ", 45.5, -122.6).name == "Portland"
    for lat, lon in ((91, 0), (0, 181), (-90.5, 0)):
        with pytest.raises(InvalidArgument):
            check_location("x", lat, lon)
