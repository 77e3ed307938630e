"""What a caption, its hashtags and a location may be."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from mesh.errors import invalid_field
from usertext import HASHTAG_MAX, normalize_hashtag, parse_hashtags, parse_mentions

CAPTION_MAX = 2200
HASHTAGS_MAX = 30
LOCATION_NAME_MAX = 100


@dataclass(frozen=True)
class Location:
    name: str
    latitude: float
    longitude: float


def check_caption(caption: str) -> str:
    """The caption, unchanged; INVALID_ARGUMENT if it is too long or has too many hashtags."""
    if len(caption) > CAPTION_MAX:
        raise invalid_field("caption", f"must be at most {CAPTION_MAX} characters (got {len(caption)})")
    if len(hashtags_of(caption)) > HASHTAGS_MAX:
        raise invalid_field("caption", f"may carry at most {HASHTAGS_MAX} hashtags")
    return caption


def hashtags_of(caption: str) -> list[str]:
    """The caption's hashtags without '#', normalised (usertext.normalize_hashtag: NFKC, case folded,
    combining marks kept), in order of first appearance, each once."""
    return parse_hashtags(caption)


def tag_named(raw: str, field: str) -> str:
    """The hashtag `raw` names, spelled as captions store it (usertext.normalize_hashtag), with or
    without its '#' (a full-width U+FF03 too) and surrounding spaces: "#Café", "café" and "CAFÉ" are one.
    INVALID_ARGUMENT naming `field` if it is not a hashtag."""
    tag = normalize_hashtag(unicodedata.normalize("NFKC", raw).strip().removeprefix("#"))
    if tag is None:
        raise invalid_field(
            field,
            f"must be a hashtag: 1-{HASHTAG_MAX} letters, digits, marks or '_' of any script, '#' optional",
        )
    return tag


def mentions_of(caption: str) -> list[str]:
    """The usernames the caption @mentions (usertext.parse_mentions: graph_svc's username rules, each
    once, at most 20). Whether they exist is for whoever announces them (engagement_svc)."""
    return parse_mentions(caption)


def check_location(name: str, latitude: float, longitude: float) -> Location | None:
    """None when no location was given (all fields empty); INVALID_ARGUMENT for impossible values."""
    if not name and latitude == 0 and longitude == 0:
        return None
    if len(name) > LOCATION_NAME_MAX:
        raise invalid_field("location.name", f"must be at most {LOCATION_NAME_MAX} characters")
    if not -90 <= latitude <= 90:
        raise invalid_field("location.latitude", "must be within -90..90")
    if not -180 <= longitude <= 180:
        raise invalid_field("location.longitude", "must be within -180..180")
    return Location(name.strip(), latitude, longitude)
