"""media_svc's settings that rendition URLs depend on: a bad value stops the process at start-up."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from media_svc.settings import MediaSettings


def test_a_cdn_base_url_keeps_the_bucket_s_path():
    cdn = MediaSettings(media_bucket="glimpse-media", media_public_base_url="https://cdn.example.net/glimpse-media/")
    assert cdn.media_public_base_url == "https://cdn.example.net/glimpse-media/"
    for wrong in ("https://cdn.example.net", "https://cdn.example.net/photos", "cdn.example.net/glimpse-media"):
        with pytest.raises(ValidationError, match="media_public_base_url must be an http"):
            MediaSettings(media_bucket="glimpse-media", media_public_base_url=wrong)


def test_urls_are_signed_on_a_30_minute_grid_by_default():
    assert MediaSettings().rendition_url_slot == dt.timedelta(minutes=30)


@pytest.mark.parametrize("seconds", [59, 3 * 24 * 3600 + 1])
def test_a_slot_outside_what_s3_can_presign_is_refused(seconds):
    with pytest.raises(ValidationError, match="rendition_url_slot_seconds"):
        MediaSettings(rendition_url_slot_seconds=seconds)
