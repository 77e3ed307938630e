"""Our BlurHash encoder against an independent oracle: the `blurhash` package from PyPI (a separate
implementation of the format), decoding our hashes of real photos (../shared/datasets/photos)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import blurhash as oracle
import pytest
from PIL import Image

from media_svc import blurhash
from tests.media_svc import photos

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "photos"
_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
# A 4x3 hash keeps the photo's layout at the scale of 4 x 3 cells: its decoded preview is compared
# with the photo there. The bounds were measured on the dataset (worst photo 11.8, mean 6.3, both
# on detailed photos: the format drops everything finer) and sit below what each broken encoder in
# test_the_oracle_catches_broken_encoders reaches.
CELLS = (4, 3)
MAX_CELL_ERROR = 14.0
MAX_MEAN_CELL_ERROR = 8.0


def dataset() -> list[Path]:
    found = sorted(p for p in PHOTOS.glob("*") if p.suffix in (".png", ".jpg"))
    assert found, f"no photos in {PHOTOS}: the shared datasets folder must sit beside the repository"
    return found


def load(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def cell_means(pixels: list[list[list[int]]]) -> list[list[float]]:
    """The mean colour of each of CELLS' cells, averaged in linear light (as the format works)."""
    height, width = len(pixels), len(pixels[0])
    columns, rows = CELLS
    means = []
    for row in range(rows):
        for column in range(columns):
            block = [
                pixels[y][x]
                for y in range(row * height // rows, (row + 1) * height // rows)
                for x in range(column * width // columns, (column + 1) * width // columns)
            ]
            means.append(
                [oracle.linear_to_srgb(sum(oracle.srgb_to_linear(p[c]) for p in block) / len(block)) for c in range(3)]
            )
    return means


def cell_error(image: Image.Image, hash_: str) -> float:
    """Mean absolute difference (0-255) between the cells of the oracle's decoding of `hash_` and
    the cells of `image` downscaled (to the size the encoder samples)."""
    small = blurhash.sampled(image)
    truth = [[list(small.getpixel((x, y))) for x in range(small.width)] for y in range(small.height)]  # type: ignore[arg-type]
    preview = oracle.decode(hash_, small.width, small.height)
    pairs = zip(cell_means(preview), cell_means(truth), strict=True)
    return statistics.fmean(abs(a - b) for got, want in pairs for a, b in zip(got, want, strict=True))


def errors_of(encode: Callable[[Image.Image], str]) -> dict[str, float]:
    return {path.name: cell_error(load(path), encode(load(path))) for path in dataset()}


def ours(image: Image.Image) -> str:
    return blurhash.encode(image, *CELLS)


def test_hashes_of_real_photos_decode_to_the_photos_blurred():
    errors = errors_of(ours)
    assert max(errors.values()) <= MAX_CELL_ERROR, errors
    assert statistics.fmean(errors.values()) <= MAX_MEAN_CELL_ERROR, errors


def test_same_hash_as_the_oracles_encoder_given_the_same_pixels():
    for path in dataset():
        image = load(path)
        small = blurhash.sampled(image)
        rows = [[list(small.getpixel((x, y))) for x in range(small.width)] for y in range(small.height)]  # type: ignore[arg-type]
        assert ours(image) == oracle.encode(rows, *CELLS), path.name


def _decode83(text: str) -> int:
    value = 0
    for char in text:
        value = value * 83 + _CHARS.index(char)
    return value


def _encode83(value: int, length: int) -> str:
    return "".join(_CHARS[(value // 83 ** (length - 1 - i)) % 83] for i in range(length))


def _with_ac(hash_: str, change: Callable[[int], int]) -> str:
    """`hash_` with every quantised AC value (0..18, 9 meaning zero) passed through `change`."""
    parts = [hash_[:6]]
    for start in range(6, len(hash_), 2):
        value = _decode83(hash_[start : start + 2])
        q = (value // 361, (value // 19) % 19, value % 19)
        r, g, b = (max(0, min(18, change(c))) for c in q)
        parts.append(_encode83(r * 361 + g * 19 + b, 2))
    return "".join(parts)


# Each is a plausible encoder bug, made from our encoder so the check keeps following its changes.
BROKEN_ENCODERS: dict[str, Callable[[Image.Image], str]] = {
    # Channel order mixed up (BGR buffers).
    "red-blue swapped": lambda image: ours(Image.merge("RGB", image.split()[::-1])),
    # Cosines sampled from the wrong end, x and y: every odd frequency changes sign.
    "basis reversed": lambda image: ours(image.rotate(180)),
    # Sign of the AC terms lost.
    "AC negated": lambda image: _with_ac(ours(image), lambda q: 18 - q),
    # AC magnitudes quantised against a maximum twice too large.
    "AC halved": lambda image: _with_ac(ours(image), lambda q: 9 + round((q - 9) / 2)),
    # No linearisation: the sRGB values transformed as if linear (darker, contrastier).
    "gamma ignored": lambda image: ours(image.point(lambda v: round(255 * (v / 255) ** 2.2))),
    # Rows and columns swapped.
    "transposed": lambda image: ours(image.transpose(Image.Transpose.TRANSPOSE)),
}


@pytest.mark.parametrize("name", list(BROKEN_ENCODERS))
def test_the_oracle_catches_broken_encoders(name):
    """The bounds above are worth something: each broken encoder breaks one of them."""
    errors = errors_of(BROKEN_ENCODERS[name])
    assert max(errors.values()) > MAX_CELL_ERROR or statistics.fmean(errors.values()) > MAX_MEAN_CELL_ERROR, errors


def test_flat_colour_is_its_dc_term_with_next_to_no_ac():
    hash_ = blurhash.encode(Image.new("RGB", (64, 48), (200, 100, 50)))
    assert len(hash_) == 28 and hash_[0] == _CHARS[3 + 2 * 9]
    dc = _decode83(hash_[2:6])
    assert (dc >> 16, (dc >> 8) & 255, dc & 255) == (200, 100, 50)
    # The format samples cosines at pixel corners, so a flat image keeps tiny AC terms (as the
    # reference encoders do); the largest is what the second character quantises.
    assert (_decode83(hash_[1]) + 1) / 166 < 0.05


@pytest.mark.parametrize("size", [(400, 300), (300, 400), (37, 11)])
def test_quadrants_survive_blurred_in_the_oracles_preview(size):
    preview = oracle.decode(blurhash.encode(photos.quadrants(*size), 4, 3), 8, 8)
    # Each corner of the preview leans to its quadrant's colour.
    for (x, y), colour in zip(((0, 0), (7, 0), (0, 7), (7, 7)), photos.QUADRANT_COLOURS, strict=True):
        got = preview[y][x]
        nearest = min(photos.QUADRANT_COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(c, got, strict=True)))
        assert nearest == colour, (size, (x, y), got)


def test_transparency_is_flattened_onto_white():
    hash_ = blurhash.encode(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), 1, 1)
    assert _decode83(hash_[2:6]) == 0xFFFFFF


def test_component_counts_are_checked():
    with pytest.raises(ValueError, match=r"1\.\.9"):
        blurhash.encode(Image.new("RGB", (8, 8)), 10, 3)
