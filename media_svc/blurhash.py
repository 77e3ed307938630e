"""BlurHash encoder (https://blurha.sh): a photo's placeholder as ~28 ASCII characters.

The hash is the DC and the lowest AC terms of a 2-D cosine transform of the image in linear light,
quantised and written in base 83. Clients decode it into a blurred preview while the real
rendition loads. Written here (rather than a C extension) because it only ever sees a tiny image.
"""

from __future__ import annotations

import math

from PIL import Image

_BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
# The transform only keeps a few low frequencies, so a 32-pixel thumbnail gives the same hash as
# the full image (to within quantisation) for a fraction of the work.
SAMPLE_SIDE = 32


def _srgb_to_linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_LINEAR = [_srgb_to_linear(v) for v in range(256)]


def _linear_to_srgb(value: float) -> int:
    v = min(max(value, 0.0), 1.0)
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _base83(value: int, length: int) -> str:
    return "".join(_BASE83[(value // 83 ** (length - 1 - i)) % 83] for i in range(length))


def _sign_pow(value: float, exponent: float) -> float:
    return math.copysign(abs(value) ** exponent, value)


def encode(image: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash of `image` (any mode; transparency is flattened onto white).

    Raises ValueError if a component count is outside 1..9 (the format's limit).
    """
    if not (1 <= x_components <= 9 and 1 <= y_components <= 9):
        raise ValueError("component counts must be within 1..9")
    sample = sampled(image)
    width, height = sample.size
    pixels = sample.tobytes()

    cos_x = [[math.cos(math.pi * i * x / width) for x in range(width)] for i in range(x_components)]
    cos_y = [[math.cos(math.pi * j * y / height) for y in range(height)] for j in range(y_components)]
    # Separable transform: first along each row (per horizontal frequency), then down the columns.
    row_sums = [[[0.0, 0.0, 0.0] for _ in range(height)] for _ in range(x_components)]
    for y in range(height):
        offset = y * width * 3
        linear = [_LINEAR[b] for b in pixels[offset : offset + width * 3]]
        for i in range(x_components):
            weights = cos_x[i]
            r = g = b = 0.0
            for x in range(width):
                w = weights[x]
                r += w * linear[3 * x]
                g += w * linear[3 * x + 1]
                b += w * linear[3 * x + 2]
            row_sums[i][y] = [r, g, b]
    factors: list[tuple[float, float, float]] = []
    for j in range(y_components):
        for i in range(x_components):
            scale = (1 if i == 0 and j == 0 else 2) / (width * height)
            r = g = b = 0.0
            for y in range(height):
                w = cos_y[j][y]
                rs = row_sums[i][y]
                r += w * rs[0]
                g += w * rs[1]
                b += w * rs[2]
            factors.append((r * scale, g * scale, b * scale))

    dc, ac = factors[0], factors[1:]
    parts = [_base83((x_components - 1) + (y_components - 1) * 9, 1)]
    if ac:
        actual_max = max(abs(c) for factor in ac for c in factor)
        quantised_max = max(0, min(82, math.floor(actual_max * 166 - 0.5)))
        maximum = (quantised_max + 1) / 166
        parts.append(_base83(quantised_max, 1))
    else:
        maximum = 1.0
        parts.append(_base83(0, 1))
    parts.append(_base83((_linear_to_srgb(dc[0]) << 16) + (_linear_to_srgb(dc[1]) << 8) + _linear_to_srgb(dc[2]), 4))
    for factor in ac:
        q = [max(0, min(18, math.floor(_sign_pow(c / maximum, 0.5) * 9 + 9.5))) for c in factor]
        parts.append(_base83(q[0] * 19 * 19 + q[1] * 19 + q[2], 2))
    return "".join(parts)


def sampled(image: Image.Image) -> Image.Image:
    """The RGB image `encode` transforms: `image` flattened onto white and reduced to fit
    SAMPLE_SIDE x SAMPLE_SIDE (aspect kept, never enlarged)."""
    sample = _flatten(image)
    sample.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.BILINEAR)
    return sample


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB copy; transparent areas become white, as most clients draw them."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
