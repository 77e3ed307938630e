"""The rendition pipeline on its own: bytes in, upright metadata-free WebP renditions out."""

from __future__ import annotations

import hashlib
import io
import warnings

import pytest
from PIL import Image, ImageCms, ImageOps

from media_svc.images import UnusableImage, refuse_decompression_bombs, render
from tests.media_svc import photos

MAX_PIXELS = 50_000_000


def decoded(webp: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(webp))
    assert image.format == "WEBP"
    image.load()
    return image


def corners(image: Image.Image) -> list[tuple[int, ...]]:
    w, h = image.size
    rgb = image.convert("RGB")
    return [rgb.getpixel((x, y)) for x, y in ((w // 8, h // 8), (w * 7 // 8, h // 8), (w // 8, h * 7 // 8))]  # type: ignore[misc]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=False))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(orientation):
    raw = photos.encoded(photos.quadrants(600, 400), "JPEG", quality=95, exif=photos.camera_exif(orientation))
    rendering = render(raw, max_pixels=MAX_PIXELS)
    # Pillow's exif_transpose on the full image is the reference for what "upright" means.
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(raw)))
    assert (rendering.width, rendering.height) == expected.size
    smallest = decoded(rendering.renditions[-1].webp)
    assert smallest.size[0] / smallest.size[1] == pytest.approx(expected.size[0] / expected.size[1], rel=0.02)
    reference = expected.resize(smallest.size)
    for got, want in zip(corners(smallest), corners(reference), strict=True):
        assert close(got, want), (orientation, got, want)


def test_sideways_phone_photo_is_upright_small_and_has_no_metadata():
    raw = photos.phone_jpeg(3000, 2000, orientation=6)
    rendering = render(raw, max_pixels=MAX_PIXELS)
    assert rendering.real_format == "jpeg"
    assert (rendering.width, rendering.height) == (2000, 3000)
    assert rendering.checksum == hashlib.sha256(raw).hexdigest()
    assert [(r.size, r.width, r.height) for r in rendering.renditions] == [
        (1080, 720, 1080),
        (640, 427, 640),
        (150, 100, 150),
    ]
    for rendition in rendering.renditions:
        image = decoded(rendition.webp)
        assert image.size == (rendition.width, rendition.height)
        # Turned 90 degrees clockwise: the stored top-left (red) is now top-right.
        top_left, top_right, bottom_left = corners(image)
        assert close(top_right, photos.RED), top_right
        assert close(top_left, photos.BLUE) and close(bottom_left, photos.YELLOW), (top_left, bottom_left)
        assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
        assert b"Exif" not in rendition.webp and photos.CAMERA.encode() not in rendition.webp


def test_transparent_png_keeps_its_alpha():
    rendering = render(photos.transparent_png(), max_pixels=MAX_PIXELS)
    assert rendering.real_format == "png"
    for rendition in rendering.renditions:
        image = decoded(rendition.webp)
        assert image.mode == "RGBA"
        w, h = image.size
        assert image.getpixel((w // 4, h // 2))[3] == 255  # type: ignore[index]
        assert image.getpixel((w * 3 // 4, h // 2))[3] == 0  # type: ignore[index]


def test_small_image_is_never_upscaled():
    rendering = render(photos.tiny_jpeg(), max_pixels=MAX_PIXELS)
    assert [(r.width, r.height) for r in rendering.renditions] == [(100, 80)] * 3
    assert all(decoded(r.webp).size == (100, 80) for r in rendering.renditions)


def test_webp_upload_and_embedded_profile_are_handled():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    raw = photos.encoded(photos.quadrants(1600, 1200), "WEBP", quality=90, icc_profile=srgb)
    rendering = render(raw, max_pixels=MAX_PIXELS)
    assert rendering.real_format == "webp"
    image = decoded(rendering.renditions[0].webp)
    assert image.size == (1080, 810) and "icc_profile" not in image.info
    assert close(corners(image)[0], photos.RED)


def test_cmyk_jpeg_becomes_rgb():
    raw = photos.encoded(photos.quadrants(400, 300).convert("CMYK"), "JPEG", quality=90)
    image = decoded(render(raw, max_pixels=MAX_PIXELS).renditions[0].webp)
    assert image.mode == "RGB" and close(corners(image)[0], photos.RED, tolerance=60)


# Pillow warns before render's own check refuses (the in-process worker lowers Pillow's limit).
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (photos.NOT_AN_IMAGE, "not an image"),
        (b"", "not an image"),
        (photos.truncated_jpeg(), "truncated"),
        (photos.png_declaring(30000, 30000), "decompression bomb"),
        (photos.png_declaring(8000, 7000), "decompression bomb"),
        (photos.encoded(Image.new("RGB", (40, 40)), "GIF"), "GIF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
    ],
    ids=["text", "empty", "truncated", "bomb-900MP", "bomb-56MP", "gif", "heic"],
)
def test_unusable_uploads_say_why(raw, reason):
    with pytest.raises(UnusableImage) as caught:
        render(raw, max_pixels=MAX_PIXELS)
    assert reason in caught.value.reason
    assert "upload" in caught.value.reason  # and what to do about it


def test_same_bytes_give_the_same_renditions():
    raw = photos.phone_jpeg(1200, 900)
    first, second = render(raw, max_pixels=MAX_PIXELS), render(raw, max_pixels=MAX_PIXELS)
    assert first == second


def test_mpo_from_a_phone_is_a_jpeg():
    out = io.BytesIO()
    photos.quadrants(1600, 1200).save(
        out, "MPO", save_all=True, append_images=[photos.quadrants(160, 120)], exif=photos.camera_exif(6)
    )
    rendering = render(out.getvalue(), max_pixels=MAX_PIXELS)
    assert rendering.real_format == "jpeg" and (rendering.width, rendering.height) == (1200, 1600)


def test_sixteen_bit_grey_png_keeps_its_tones():
    grey = Image.new("I;16", (256, 64))
    grey.putdata([x * 257 for _ in range(64) for x in range(256)])  # black to white, left to right
    image = decoded(render(photos.encoded(grey, "PNG"), max_pixels=MAX_PIXELS).renditions[0].webp)
    left, middle = image.getpixel((4, 32)), image.getpixel((128, 32))
    assert left[0] < 20 and 100 < middle[0] < 160, (left, middle)  # type: ignore[index]


def test_transparent_colour_of_an_rgb_png_becomes_alpha():
    raw = photos.encoded(photos.quadrants(400, 300), "PNG", transparency=photos.RED)
    image = decoded(render(raw, max_pixels=MAX_PIXELS).renditions[0].webp)
    assert image.mode == "RGBA"
    assert image.getpixel((40, 30))[3] == 0 and image.getpixel((360, 30))[3] == 255  # type: ignore[index]


def test_pillow_itself_refuses_bombs_once_told(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    with warnings.catch_warnings():
        refuse_decompression_bombs(1_000_000)
        # render's own limit is set high here, so it is Pillow that refuses.
        with pytest.raises(UnusableImage, match="decompression bomb"):
            render(photos.png_declaring(1200, 1000), max_pixels=10**9)
