"""The BlurHash encoder, checked against the format's definition with a small reference decoder."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from media_svc import blurhash
from tests.media_svc import photos

_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def _decode83(text: str) -> int:
    value = 0
    for char in text:
        value = value * 83 + _CHARS.index(char)
    return value


def _to_linear(v: int) -> float:
    c = v / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _to_srgb(v: float) -> int:
    v = min(max(v, 0.0), 1.0)
    return round((v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055) * 255)


def decode(hash_: str, width: int, height: int) -> Image.Image:
    """The format's decoder, written from its specification (https://github.com/woltapp/blurhash)."""
    size_flag = _decode83(hash_[0])
    nx, ny = size_flag % 9 + 1, size_flag // 9 + 1
    assert len(hash_) == 4 + 2 * nx * ny
    maximum = (_decode83(hash_[1]) + 1) / 166
    dc = _decode83(hash_[2:6])
    colours = [(_to_linear(dc >> 16), _to_linear((dc >> 8) & 255), _to_linear(dc & 255))]
    for k in range(1, nx * ny):
        value = _decode83(hash_[4 + 2 * k : 6 + 2 * k])
        q = (value // (19 * 19), (value // 19) % 19, value % 19)
        colours.append(tuple(math.copysign(((c - 9) / 9) ** 2, c - 9) * maximum for c in q))  # type: ignore[arg-type]
    image = Image.new("RGB", (width, height))
    for y in range(height):
        for x in range(width):
            rgb = [0.0, 0.0, 0.0]
            for j in range(ny):
                for i in range(nx):
                    basis = math.cos(math.pi * x * i / width) * math.cos(math.pi * y * j / height)
                    for c in range(3):
                        rgb[c] += colours[i + j * nx][c] * basis
            image.putpixel((x, y), tuple(_to_srgb(c) for c in rgb))
    return image


def test_flat_colour_is_its_dc_term_with_next_to_no_ac():
    hash_ = blurhash.encode(Image.new("RGB", (64, 48), (200, 100, 50)))
    assert len(hash_) == 28 and hash_[0] == _CHARS[3 + 2 * 9]
    dc = _decode83(hash_[2:6])
    assert (dc >> 16, (dc >> 8) & 255, dc & 255) == (200, 100, 50)
    # The format samples cosines at pixel corners, so a flat image keeps tiny AC terms (as the
    # reference encoders do); the largest is what the second character quantises.
    assert (_decode83(hash_[1]) + 1) / 166 < 0.05


@pytest.mark.parametrize("size", [(400, 300), (300, 400), (37, 11)])
def test_decoding_the_hash_gives_a_blurred_version_of_the_image(size):
    image = photos.quadrants(*size)
    preview = decode(blurhash.encode(image, 4, 3), 8, 8)
    # The quadrants' colours survive, blurred: each corner of the preview leans to its quadrant's colour.
    for (x, y), colour in zip(((0, 0), (7, 0), (0, 7), (7, 7)), photos.QUADRANT_COLOURS, strict=True):
        got = preview.getpixel((x, y))
        nearest = min(photos.QUADRANT_COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(c, got, strict=True)))  # type: ignore[arg-type]
        assert nearest == colour, (size, (x, y), got)


def test_transparency_is_flattened_onto_white():
    hash_ = blurhash.encode(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), 1, 1)
    dc = _decode83(hash_[2:6])
    assert dc == 0xFFFFFF


def test_component_counts_are_checked():
    with pytest.raises(ValueError, match=r"1\.\.9"):
        blurhash.encode(Image.new("RGB", (8, 8)), 10, 3)
