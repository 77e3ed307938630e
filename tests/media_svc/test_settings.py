"""media_svc's settings that rendition URLs depend on: a bad value stops the process at start-up."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from media_svc.settings import MediaSettings


def test_renditions_are_fetched_from_the_public_endpoint_by_default():
    settings = MediaSettings(
        s3_endpoint="http://object-store:9000", s3_public_endpoint="https://media.example.com", media_bucket="m"
    )
    assert settings.public_base_url == "https://media.example.com/m"
    assert MediaSettings(s3_endpoint="http://127.0.0.1:9000", media_bucket="m").public_base_url == (
        "http://127.0.0.1:9000/m"
    )
    assert settings.rendition_url_slot == dt.timedelta(minutes=30)


def test_a_cdn_base_url_keeps_the_bucket_s_path():
    cdn = MediaSettings(media_bucket="glimpse-media", media_public_base_url="https://cdn.example.net/glimpse-media/")
    assert cdn.public_base_url == "https://cdn.example.net/glimpse-media"
    for wrong in ("https://cdn.example.net", "https://cdn.example.net/photos", "cdn.example.net/glimpse-media"):
        with pytest.raises(ValidationError, match="media_public_base_url must be an http"):
            MediaSettings(media_bucket="glimpse-media", media_public_base_url=wrong)


@pytest.mark.parametrize("seconds", [59, 3 * 24 * 3600 + 1])
def test_a_slot_outside_what_s3_can_presign_is_refused(seconds):
    with pytest.raises(ValidationError, match="rendition_url_slot_seconds"):
        MediaSettings(rendition_url_slot_seconds=seconds)
