"""usertext reads usernames exactly as graph_svc registers them, and finds @mentions in text."""

from __future__ import annotations

import pytest

from graph_svc.credentials import normalize_username as graph_normalize_username
from mesh.errors import InvalidArgument
from usertext import MENTIONS_MAX, normalize_hashtag, normalize_username, parse_hashtags, parse_mentions

# Valid and invalid names, and the edges of graph_svc's rules: length, case, dots, other scripts,
# surrounding spaces, and characters that lower-case into ASCII (KELVIN SIGN -> "k").
SAMPLE = [
    "ada",
    "Ada",
    "  ada.l  ",
    "a_b.c9",
    "abc",
    "ab",
    "a" * 30,
    "a" * 31,
    ".ada",
    "ada.",
    "ad..a",
    "a.d.a",
    "_ada_",
    "ada-l",
    "ada l",
    "josé",
    "東京太郎",
    "\u212aate",
    "İstanbul",
    "",
    "   ",
    "ada\n",
    "123",
    "ADA_LOVELACE.1815",
]


def graph_reading(raw: str) -> str | None:
    try:
        return graph_normalize_username(raw)
    except InvalidArgument:
        return None


@pytest.mark.parametrize("raw", SAMPLE)
def test_usertext_and_graph_svc_agree_on_every_name(raw):
    assert normalize_username(raw) == graph_reading(raw)


def test_the_sample_holds_both_kinds():
    readings = [normalize_username(raw) for raw in SAMPLE]
    assert sum(r is None for r in readings) >= 10 and sum(r is not None for r in readings) >= 10


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("hi @ada and @Bob.", ["ada", "bob"]),
        ("@ada @ADA @ada", ["ada"]),
        ("(@ada), @bob! @carol? @dave:", ["ada", "bob", "carol", "dave"]),
        ("thanks @ada.lovelace.", ["ada.lovelace"]),
        ("line one\n@ada", ["ada"]),
        # Not mentions: an address, a double '@', a glued word, too short, other scripts, bad dots.
        ("mail ada@example.com", []),
        ("@@ada", []),
        ("x@ada", []),
        ("@ab", []),
        ("@josé", []),
        ("@ad..a", []),
        ("@.ada", []),
        ("@", []),
        ("no mentions at all", []),
    ],
)
def test_mentions_are_found_like_usernames(text, mentions):
    assert parse_mentions(text) == mentions


def test_at_most_twenty_mentions_in_order_of_first_appearance():
    text = " ".join(f"@user{n:02d}" for n in range(25)) + " @user00"
    assert parse_mentions(text) == [f"user{n:02d}" for n in range(MENTIONS_MAX)]


def test_every_mention_is_a_name_graph_svc_would_accept():
    text = "@Ada, @b.o.b. @c_c @\u212aate @ad..a @" + "x" * 31
    for username in parse_mentions(text):
        assert graph_reading(username) == username


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("#हिन्दी", ["हिन्दी"]),  # the vowel signs are combining marks: today's pattern cut it to "ह"
        ("#தமிழ் கவிதை", ["தமிழ்"]),
        ("#cafe\u0301 #Café #CAFÉ", ["café"]),  # a decomposed accent stays; one tag in any case
        ("#Straße", ["strasse"]),  # case folding, not lower-casing
        ("#\uff21\uff22\uff23", ["abc"]),  # full-width letters (NFKC)
        ("a#b #c#d", ["c"]),  # glued to a word: no tag
        ("#日本 #café_2 #", ["日本", "café_2"]),
        ("#" + "x" * 101, []),  # longer than HASHTAG_MAX
    ],
)
def test_hashtags_are_nfkc_case_folded_and_keep_combining_marks(text: str, tags: list[str]):
    assert parse_hashtags(text) == tags


def test_a_tag_page_name_normalises_like_a_caption():
    assert normalize_hashtag("Cafe\u0301") == parse_hashtags("#café")[0] == "café"
    assert normalize_hashtag("not a tag") is None
    assert normalize_hashtag("") is None
