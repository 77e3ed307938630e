"""The rendition pipeline on its own: bytes in, upright metadata-free WebP renditions out."""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
import warnings
from collections.abc import Callable

import blurhash as reference
import pytest
from PIL import Image, ImageCms, ImageOps
from prometheus_client import REGISTRY

from media_svc.images import (
    PixelBudget,
    UnusableImage,
    free_decoded_pixels_at_once,
    placeholder,
    refuse_decompression_bombs,
    render,
)
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
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC/AVIF image but cannot be read"),
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


# Colour management: every mode with an embedded profile is converted from it to sRGB.

GREYS = (64, 128, 192)
# (v/255)^1.8 in linear light, written back with the sRGB curve: what a gamma-1.8 profile means.
GREYS_THROUGH_GAMMA_18 = (81, 146, 203)


def patch_values(webp: bytes, count: int = 3, patch: int = 120) -> list[tuple[int, ...]]:
    """The RGBA pixel at the centre of each patch of a rendition."""
    image = decoded(webp).convert("RGBA")
    return [image.getpixel((i * patch + patch // 2, patch // 2)) for i in range(count)]  # type: ignore[misc]


def near(got: tuple[int, ...], want: tuple[int, ...], tolerance: int = 3) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(got, want, strict=True))


def fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("glimpse_media_colour_profile_fallbacks_total", {"reason": reason}) or 0.0


def test_grey_photo_with_a_grey_gamma_profile_is_converted_through_it():
    """The issue's photo: greyscale JPEG, grey 'gamma 1.8' profile, patches 64/128/192."""
    raw = photos.encoded(photos.patches("L", GREYS), "JPEG", quality=95, icc_profile=photos.grey_gamma_profile(1.8))
    rendering = render(raw, max_pixels=MAX_PIXELS)
    for got, grey in zip(patch_values(rendering.renditions[0].webp), GREYS_THROUGH_GAMMA_18, strict=True):
        assert near(got, (grey, grey, grey, 255)), (got, grey)


@pytest.mark.parametrize(
    ("mode", "fmt", "profile"),
    [
        ("L", "PNG", "grey"),
        ("LA", "PNG", "grey"),
        ("RGB", "JPEG", "rgb"),
        ("RGB", "PNG", "rgb"),
        ("RGBA", "PNG", "rgb"),
        ("RGBA", "WEBP", "rgb"),
        ("P", "PNG", "rgb"),
        ("L", "JPEG", "rgb"),  # a grey JPEG tagged with an RGB profile: grey is RGB too
    ],
)
def test_every_mode_with_a_profile_is_converted_through_it(mode, fmt, profile):
    icc = photos.grey_gamma_profile(1.8) if profile == "grey" else photos.rgb_gamma_profile(1.8)
    image = photos.patches(mode, GREYS)
    params: dict[str, object] = {"icc_profile": icc}
    if fmt != "PNG":
        params["quality"] = 95
    if mode in ("LA", "RGBA"):
        # The middle patch half transparent: alpha must come through untouched.
        alpha = Image.new("L", image.size, 255)
        alpha.paste(128, (120, 0, 240, 120))
        image.putalpha(alpha)
    if fmt == "WEBP":
        params["lossless"] = True
    raw = photos.encoded(image, fmt, **params)
    assert Image.open(io.BytesIO(raw)).mode == mode
    rendition = render(raw, max_pixels=MAX_PIXELS).renditions[0].webp
    alphas = (255, 128, 255) if mode in ("LA", "RGBA") else (255, 255, 255)
    for got, grey, alpha_value in zip(patch_values(rendition), GREYS_THROUGH_GAMMA_18, alphas, strict=True):
        assert near(got[:3], (grey, grey, grey), tolerance=4) and abs(got[3] - alpha_value) <= 2, (got, grey)


def test_cmyk_jpeg_is_converted_through_its_press_profile():
    image = Image.new("CMYK", (360, 120))
    for i, ink in enumerate(((255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0))):
        image.paste(ink, (i * 120, 0, (i + 1) * 120, 120))
    raw = photos.encoded(image, "JPEG", quality=95, icc_profile=photos.cmyk_press_profile())
    got = patch_values(render(raw, max_pixels=MAX_PIXELS).renditions[0].webp)
    # A conversion ignoring the profile would give (0, 255, 255), (255, 0, 255) and (255, 255, 0).
    for value, ink in zip(got, (photos.PRESS_CYAN, photos.PRESS_MAGENTA, photos.PRESS_YELLOW), strict=True):
        assert near(value[:3], ink, tolerance=6), (value, ink)


@pytest.mark.parametrize(
    ("icc", "mode", "reason"),
    [
        (b"this is not an ICC profile at all", "RGB", "unreadable"),
        (photos.grey_gamma_profile(1.8)[:100], "L", "unreadable"),  # cut short
        (photos.cmyk_press_profile(), "RGB", "mismatch"),  # RGB pixels, CMYK profile
        (ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes(), "RGB", "unsupported_space"),
    ],
    ids=["garbage", "truncated", "cmyk-profile-on-rgb", "lab-profile"],
)
def test_a_profile_that_cannot_be_used_falls_back_to_srgb_counted_and_logged(icc, mode, reason, caplog):
    raw = photos.encoded(photos.patches(mode, GREYS), "JPEG", quality=95, icc_profile=icc)
    before = fallbacks(reason)
    with caplog.at_level(logging.WARNING, logger="media_svc.images"):
        rendering = render(raw, max_pixels=MAX_PIXELS)
    # The pixels as stored, taken as sRGB: what a browser shows for the file without its profile.
    for got, grey in zip(patch_values(rendering.renditions[0].webp), GREYS, strict=True):
        assert near(got[:3], (grey, grey, grey)), (got, grey)
    assert fallbacks(reason) == before + 1
    [record] = [r for r in caplog.records if r.name == "media_svc.images"]
    assert record.reason == reason and "taken as sRGB" in record.getMessage()  # type: ignore[attr-defined]


def test_a_usable_profile_is_not_counted_as_a_fallback():
    counted = {
        reason: fallbacks(reason) for reason in ("unreadable", "mismatch", "unsupported_space", "transform_failed")
    }
    raw = photos.encoded(photos.patches("L", GREYS), "JPEG", quality=95, icc_profile=photos.grey_gamma_profile())
    render(raw, max_pixels=MAX_PIXELS)
    assert {reason: fallbacks(reason) for reason in counted} == counted


# HEIC/HEIF (iPhone photos) and AVIF.


def test_iphone_heic_is_upright_colour_managed_and_has_no_metadata():
    raw = photos.phone_heic(1200, 800, orientation=6, icc_profile=photos.rgb_gamma_profile(1.8))
    assert raw[4:12] == b"ftypheic"
    rendering = render(raw, max_pixels=MAX_PIXELS)
    assert rendering.real_format == "heif"
    assert (rendering.width, rendering.height) == (800, 1200)  # the rotation its irot box asks for
    assert [(r.width, r.height) for r in rendering.renditions] == [(720, 1080), (427, 640), (100, 150)]
    for rendition in rendering.renditions:
        image = decoded(rendition.webp)
        top_left, top_right, _ = corners(image)
        assert close(top_right, _through_gamma_18(photos.RED), tolerance=12), top_right
        assert close(top_left, _through_gamma_18(photos.BLUE), tolerance=12), top_left
        assert not image.getexif() and "icc_profile" not in image.info
        assert b"Exif" not in rendition.webp and photos.CAMERA.encode() not in rendition.webp


def test_avif_is_upright_and_has_no_metadata():
    raw = photos.encoded(photos.quadrants(900, 600), "AVIF", quality=90, exif=photos.camera_exif(6))
    assert raw[4:12] == b"ftypavif"
    rendering = render(raw, max_pixels=MAX_PIXELS)
    assert rendering.real_format == "avif"
    assert (rendering.width, rendering.height) == (600, 900)
    image = decoded(rendering.renditions[0].webp)
    top_left, top_right, _ = corners(image)
    assert close(top_right, photos.RED) and close(top_left, photos.BLUE), (top_left, top_right)
    assert not image.getexif() and photos.CAMERA.encode() not in rendering.renditions[0].webp


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heif_and_avif_above_the_pixel_cap_are_refused_before_decoding(fmt):
    raw = photos.encoded(photos.quadrants(1200, 1000), fmt, quality=50)
    with pytest.raises(UnusableImage, match=r"\(1200x1000\).*decompression bomb"):
        render(raw, max_pixels=1_000_000)
    with pytest.raises(UnusableImage, match="decompression bomb"):
        placeholder(raw, max_pixels=1_000_000)


def test_truncated_heic_says_so():
    raw = photos.phone_heic(600, 400)
    with pytest.raises(UnusableImage, match=r"cannot be read \(truncated, corrupt"):
        render(raw[: len(raw) // 2], max_pixels=MAX_PIXELS)


def _through_gamma_18(colour: tuple[int, int, int]) -> tuple[int, ...]:
    """`colour` as stored under a gamma-1.8 RGB profile, shown in sRGB."""
    converted = ImageCms.profileToProfile(
        Image.new("RGB", (1, 1), colour),
        ImageCms.ImageCmsProfile(io.BytesIO(photos.rgb_gamma_profile(1.8))),
        ImageCms.createProfile("sRGB"),
    )
    return converted.getpixel((0, 0))  # type: ignore[return-value]


# The placeholder AttachMedia stores: the same picture as the renditions' blurhash, decoded cheaply.


@pytest.mark.parametrize(
    "raw",
    [
        photos.phone_jpeg(3000, 2000, orientation=6),
        photos.phone_heic(1200, 800, orientation=6, thumbnail=160),
        photos.encoded(photos.quadrants(900, 600), "AVIF", quality=90, exif=photos.camera_exif(6)),
        photos.transparent_png(),
    ],
    ids=["jpeg", "heic-with-thumbnail", "avif", "png"],
)
def test_placeholder_describes_the_same_upright_picture_as_the_renditions(raw):
    quick = placeholder(raw, max_pixels=MAX_PIXELS)
    full = render(raw, max_pixels=MAX_PIXELS).blurhash
    assert len(quick) == len(full) and quick[0] == full[0]  # same component counts: same orientation
    assert _mean_abs_difference(quick, full) < 6


def _mean_abs_difference(first: str, second: str) -> float:
    """Mean absolute difference (0-255) between the two hashes' previews, decoded by the
    reference implementation."""
    a = reference.decode(first, 16, 16)
    b = reference.decode(second, 16, 16)
    values = [
        abs(x - y)
        for row_a, row_b in zip(a, b, strict=True)
        for pa, pb in zip(row_a, row_b, strict=True)
        for x, y in zip(pa, pb, strict=True)
    ]
    return sum(values) / len(values)


# The pixel budget: how many decoded pixels the worker's renders may hold at once.

WAIT = 10.0  # seconds a test waits for something that must happen
SETTLE = 0.3  # seconds a test waits to see that something does not happen


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    """Runs `work` in a thread; the event is set once it returned (or raised)."""
    done = threading.Event()

    def run() -> None:
        try:
            work()
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, done


def _holding(budget: PixelBudget, pixels: int) -> tuple[threading.Event, threading.Event]:
    """A thread holding `pixels` of `budget` until the returned `release` is set; `holding` is set
    once it holds them."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with budget.hold(pixels):
            holding.set()
            release.wait(WAIT)

    _in_thread(hold)
    return holding, release


def test_holds_that_fit_go_together_and_one_that_does_not_waits_for_a_release():
    budget = PixelBudget(100)
    first, release_first = _holding(budget, 60)
    second, release_second = _holding(budget, 40)
    assert first.wait(WAIT) and second.wait(WAIT) and budget.held == 100
    third, release_third = _holding(budget, 30)
    assert not third.wait(SETTLE)
    release_first.set()
    assert third.wait(WAIT)
    release_second.set()
    release_third.set()
    deadline = time.monotonic() + WAIT
    while budget.held and time.monotonic() < deadline:
        time.sleep(0.01)
    assert budget.held == 0


def test_an_image_larger_than_the_budget_goes_alone():
    budget = PixelBudget(100)
    with budget.hold(10_000):
        assert budget.held == 100
        late, release = _holding(budget, 1)
        assert not late.wait(SETTLE)
    assert late.wait(WAIT)
    release.set()


def test_a_waiting_large_image_is_not_overtaken_by_small_ones():
    budget = PixelBudget(100)
    small, release_small = _holding(budget, 30)
    assert small.wait(WAIT)
    large, release_large = _holding(budget, 100)
    assert not large.wait(SETTLE)
    # 30 + 30 would fit, but the large image asked first.
    later, release_later = _holding(budget, 30)
    assert not later.wait(SETTLE)
    release_small.set()
    assert large.wait(WAIT) and not later.is_set()
    release_large.set()
    assert later.wait(WAIT)
    release_later.set()


def test_a_render_waits_for_the_pixels_it_decodes_and_a_jpeg_needs_only_its_reduced_size():
    budget = PixelBudget(4_000_000)
    jpeg = photos.phone_jpeg(4000, 3000, orientation=1)  # decoded at 1/2 scale: 2000x1500 = 3 MP
    png = photos.encoded(photos.quadrants(4000, 3000), "PNG")  # always decoded whole: 12 MP
    holding, release = _holding(budget, 1_000_000)
    assert holding.wait(WAIT)
    _, jpeg_done = _in_thread(lambda: render(jpeg, max_pixels=MAX_PIXELS, budget=budget))
    assert jpeg_done.wait(WAIT)  # 1 MP held + 3 MP fit in 4 MP
    _, png_done = _in_thread(lambda: render(png, max_pixels=MAX_PIXELS, budget=budget))
    assert not png_done.wait(SETTLE)  # needs the whole budget: waits for the holder
    release.set()
    assert png_done.wait(WAIT)
    assert budget.held == 0


def test_a_render_that_fails_gives_its_pixels_back():
    budget = PixelBudget(MAX_PIXELS)
    raw = photos.phone_jpeg(800, 600)  # its header reads fine; decoding it fails
    with pytest.raises(UnusableImage, match="truncated or corrupt"):
        render(raw[: len(raw) // 2], max_pixels=MAX_PIXELS, budget=budget)
    assert budget.held == 0


def test_a_budget_is_at_least_one_pixel():
    with pytest.raises(ValueError, match="at least one pixel"):
        PixelBudget(0)


def test_the_allocator_is_told_to_return_freed_pixels(caplog):
    # This machine kind runs glibc (as the service image does): the setting must take.
    with caplog.at_level(logging.WARNING, logger="media_svc.images"):
        free_decoded_pixels_at_once()
    assert not caplog.records
