"""The rendition pipeline: raw upload bytes in, upright metadata-free WebP renditions and a blurhash out.

Pure CPU work with no I/O, so the worker runs it in a thread and the benchmark calls it directly.
Every way an upload can be unusable raises `UnusableImage` with a reason a person can act on;
anything else escaping from here is a bug (or memory exhaustion), not a bad photo.

Speed comes from decoding as little as possible: JPEG draft mode lets libjpeg decode straight to
a power-of-two reduction that is still at least as large as the biggest rendition (HEIF's draft
picks an embedded thumbnail when one is large enough), each rendition is resized from the previous
(smaller) one, and orientation and colour conversion run on the first rendition rather than on the
full-size image.

Colour: an embedded ICC profile is honoured for every image mode (grey, RGB, CMYK, palette, with or
without alpha): the colour channels are converted from the profile to sRGB in the mode LittleCMS
expects for the profile's colour space, alpha is carried over untouched. A profile that cannot be
used is logged and counted (`glimpse_media_colour_profile_fallbacks_total`) and the pixels are
then taken as sRGB, which is what browsers would show for the same file without a profile.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import hashlib
import io
import logging
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pillow_heif
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError
from prometheus_client import Counter

from media_svc import blurhash

log = logging.getLogger("media_svc.images")

# HEIC/HEIF (iPhone photos) through libheif; AVIF is decoded by Pillow's own plugin (libavif).
pillow_heif.register_heif_opener()

# Longest side of each rendition, largest first (each is made from the one before it).
RENDITION_SIZES = (1080, 640, 150)
# Side of each square avatar rendition, largest first: 320 for a profile page, 150 for every list.
AVATAR_SIZES = (320, 150)
# Pillow's names of the formats we accept, and ours. MPO is a JPEG with extra frames appended
# (many phones write it); its first frame is the photo. HEIF covers .heic and .heif files.
ACCEPTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "HEIF": "heif", "AVIF": "avif"}
ACCEPTED_NAMES = "a JPEG, PNG, WebP, HEIC or AVIF image"
# Only these parsers ever see an upload: less attack surface. The format is found from the bytes,
# never from the declared type. AVIF before HEIF: both are ISO-BMFF files, each plugin claims its own.
_PARSERS = ("JPEG", "PNG", "WEBP", "AVIF", "HEIF")
WEBP_QUALITY = 80
# libwebp's effort (0 fastest .. 6 smallest). 2 encodes about twice as fast as the default 4 for
# files about 7% larger at the same quality (bench/renditions.py prints both); encoding is the
# largest cost left once decoding is reduced.
WEBP_METHOD = 2
# Bicubic is Pillow's own choice for thumbnails; for the <2x steps between renditions it is
# visually the same as Lanczos at two thirds of the cost.
RESAMPLE = Image.Resampling.BICUBIC
# Resize in two steps (a cheap box reduction, then bicubic) when shrinking by more than this
# factor; at 3 the result is indistinguishable from a one-step resize (Pillow's docs).
REDUCING_GAP = 3.0
# The most memory one decoded pixel costs while an upload is decoded and reduced, over every
# accepted format; measured on 50-MP images (12 MP for HEIC), as peak RSS growth over pixels:
# WebP 16.4 (libwebp's decoder keeps two canvases, Pillow copies its frame, then the image),
# 16-bit grey PNG 10.0 (widened to 32 bits twice for the tone mapping), PNG with alpha 9.4 and
# AVIF 9.3 (alpha is premultiplied in a copy for resizing), HEIC 9.0 (libheif's planes, then the
# image), PNG 5.4. A JPEG decodes 1/4 to 1/64 of its pixels (draft): ~10 MiB for 50 MP.
DECODED_BYTES_PER_PIXEL = 17
BLURHASH_COMPONENTS = (4, 3)
# The blurhash of an upload before renditions exist is computed from an image this small (after a
# draft decode), which costs a few milliseconds for a JPEG.
PLACEHOLDER_SIDE = blurhash.SAMPLE_SIDE

# EXIF orientation -> the transpose that makes the picture upright (EXIF 2.32, tag 0x0112).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Formats people commonly upload by mistake, recognised by their first bytes for a clearer reason.
_OTHER_FORMATS = (
    (b"GIF87a", "a GIF"),
    (b"GIF89a", "a GIF"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)
_ISO_BMFF_IMAGE_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
_SRGB = ImageCms.createProfile("sRGB")
# LittleCMS's pixel layout for each ICC colour space (the profile header's data colour space).
_MODE_FOR_SPACE = {"GRAY": "L", "RGB": "RGB", "CMYK": "CMYK"}
# Modes whose pixels may be converted to a profile's mode without losing what the profile describes:
# a grey image is also an RGB one; an RGB image under a grey profile holds grey (palette images).
_COMPATIBLE = {("L", "RGB"), ("RGB", "L")}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F")

COLOUR_PROFILE_FALLBACKS = Counter(
    "glimpse_media_colour_profile_fallbacks_total",
    "Uploads whose embedded ICC profile could not be applied (pixels taken as sRGB), by reason.",
    ["reason"],
)


class UnusableImage(Exception):
    """The upload can never be made into renditions; `reason` says why, for the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RenderedImage:
    size: int
    width: int
    height: int
    webp: bytes


@dataclass(frozen=True)
class Rendering:
    real_format: str
    # Of the upright original.
    width: int
    height: int
    checksum: str
    blurhash: str
    renditions: tuple[RenderedImage, ...]


class PixelBudget:
    """How many decoded pixels may be in memory at once in a process, shared by the threads that
    decode: memory follows the pixels decoded, not the number of photos (a JPEG decoded at 1/8
    scale costs 1/64 of a PNG of the same size, which is always decoded whole).

    Each decode holds its pixel count (at most the whole budget, so any image can go alone) from
    before it decodes until the full-size pixels are dropped. Requests are served in arrival order,
    so a large photo is not starved by a stream of small ones.
    """

    def __init__(self, pixels: int) -> None:
        if pixels < 1:
            raise ValueError("a pixel budget must be at least one pixel")
        self.pixels = pixels
        self._used = 0
        self._queue: collections.deque[object] = collections.deque()
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Blocks until `pixels` (capped at the budget) fit beside what others hold, then holds them."""
        need = min(pixels, self.pixels)
        turn = object()
        with self._changed:
            self._queue.append(turn)
            self._changed.wait_for(lambda: self._queue[0] is turn and self._used + need <= self.pixels)
            self._queue.popleft()
            self._used += need
            self._changed.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._changed:
                self._used -= need
                self._changed.notify_all()

    @property
    def held(self) -> int:
        """Pixels held right now (for tests and metrics)."""
        with self._changed:
            return self._used


# glibc's mallopt parameter, and the size from which every allocation gets a mapping of its own.
_M_MMAP_THRESHOLD = -3
_OWN_MAPPING_BYTES = 1 << 20


def free_decoded_pixels_at_once() -> None:
    """Makes the C allocator (glibc) give every allocation of 1 MiB or more a mapping of its own,
    returned to the system as soon as it is freed. By default glibc raises that threshold each time
    a large block is freed (up to 32 MiB), then serves image blocks from per-thread heaps that keep
    what is freed: four 50-MP WebP decodes one after another (placeholders and renders share the
    pixel budget), each in another thread, left a process at +1.2 GiB instead of the +0.8 GiB of one
    (measured; with this, +0.8 GiB). Process-wide: call once at start-up. Where the C library is not
    glibc this does nothing (logged)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.warning("no mallopt in this C library: freed image memory may be kept by the allocator")
        return
    if mallopt(_M_MMAP_THRESHOLD, _OWN_MAPPING_BYTES) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused: freed image memory may be kept by the allocator")


def refuse_decompression_bombs(max_pixels: int) -> None:
    """Makes Pillow itself refuse images above `max_pixels` in this process: its warning becomes an
    error. A second line behind `render`'s own check (which runs first); call once at start-up,
    since Pillow's limit and the warning filters are process-wide."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def render(
    raw: bytes, *, max_pixels: int, webp_method: int = WEBP_METHOD, budget: PixelBudget | None = None
) -> Rendering:
    """Renditions (1080, 640 and 150 px, never upscaled), blurhash and checksum of an upload.

    Memory: the decoded image (see PixelBudget; `budget`, if given, is held while it exists) plus
    renditions-sized copies. Raises UnusableImage if `raw` is not a JPEG, PNG, WebP, HEIC/HEIF or
    AVIF image, is truncated or corrupt, or has more than `max_pixels` pixels (a decompression
    bomb, or simply too large).
    """
    checksum = hashlib.sha256(raw).hexdigest()
    image, real_format = _open(raw, max_pixels)
    orientation = _orientation(image)
    stored_w, stored_h = image.size
    first_w, first_h = _fit(stored_w, stored_h, RENDITION_SIZES[0])
    with _decoding(image, (first_w, first_h), budget):
        current = _upright_srgb(image, (first_w, first_h), orientation, max_pixels)
        del image  # the last reference: the decoder's buffers go too, before the budget is released

    renditions: list[RenderedImage] = []
    for size in RENDITION_SIZES:
        width, height = _fit(*current.size, size)
        current = _resized(current, width, height)
        if renditions and (renditions[-1].width, renditions[-1].height) == (width, height):
            webp = renditions[-1].webp  # a small original: the same pixels, the same bytes
        else:
            webp = _encode_webp(current, webp_method)
        renditions.append(RenderedImage(size, width, height, webp))

    upright_w, upright_h = (stored_h, stored_w) if orientation in (5, 6, 7, 8) else (stored_w, stored_h)
    return Rendering(
        real_format=real_format,
        width=upright_w,
        height=upright_h,
        checksum=checksum,
        blurhash=blurhash.encode(current, *_components(*current.size)),
        renditions=tuple(renditions),
    )


def render_avatar(
    raw: bytes, *, max_pixels: int, webp_method: int = WEBP_METHOD, budget: PixelBudget | None = None
) -> Rendering:
    """Square renditions of a profile picture (AVATAR_SIZES: 320 and 150 px, never upscaled, so a
    photo whose shorter side is below 320 px gives a square of that side), blurhash and checksum.

    The photo is decoded only as large as its shorter side needs to be for 320 px (JPEG draft), made
    upright and sRGB and stripped of every piece of metadata exactly as `render` does, then cropped
    to the centred square of its shorter side. `Rendering.width`/`height` are the upright
    original's. Memory and errors: as `render`.
    """
    checksum = hashlib.sha256(raw).hexdigest()
    image, real_format = _open(raw, max_pixels)
    orientation = _orientation(image)
    stored_w, stored_h = image.size
    first = _cover(stored_w, stored_h, AVATAR_SIZES[0])
    with _decoding(image, first, budget):
        current = _upright_srgb(image, first, orientation, max_pixels)
        del image  # as in render
    side = min(current.size)
    left, top = (current.width - side) // 2, (current.height - side) // 2
    current = current.crop((left, top, left + side, top + side))

    renditions: list[RenderedImage] = []
    for size in AVATAR_SIZES:
        edge = min(side, size)
        current = _resized(current, edge, edge)
        if renditions and renditions[-1].width == edge:
            webp = renditions[-1].webp  # a small picture: the same pixels, the same bytes
        else:
            webp = _encode_webp(current, webp_method)
        renditions.append(RenderedImage(size, edge, edge, webp))

    upright_w, upright_h = (stored_h, stored_w) if orientation in (5, 6, 7, 8) else (stored_w, stored_h)
    return Rendering(
        real_format=real_format,
        width=upright_w,
        height=upright_h,
        checksum=checksum,
        blurhash=blurhash.encode(current, *_components(*current.size)),
        renditions=tuple(renditions),
    )


def placeholder(raw: bytes, *, max_pixels: int, budget: PixelBudget | None = None) -> str:
    """The blurhash of an upload, for clients to show while its renditions are being made.

    Decodes as little as it can: a JPEG at 1/8 scale, a HEIC's embedded thumbnail when it has one;
    other formats are decoded whole and then reduced (still bounded by `max_pixels`; `budget`, if
    given, is held meanwhile, as by `render`). Upright and in sRGB, like the renditions. Raises
    UnusableImage exactly as `render` does.
    """
    image, _ = _open(raw, max_pixels)
    orientation = _orientation(image)
    size = _fit(*image.size, PLACEHOLDER_SIDE)
    with _decoding(image, size, budget):
        current = _upright_srgb(image, size, orientation, max_pixels)
        del image  # as in render
    return blurhash.encode(current, *_components(*current.size))


def _decoding(
    image: Image.Image, size: tuple[int, int], budget: PixelBudget | None
) -> contextlib.AbstractContextManager[None]:
    """Asks `image` to decode no more than `size` needs (JPEG: at 1/2, 1/4 or 1/8 scale when that
    still covers `size`; HEIF: a large enough embedded thumbnail; other formats decode whole), then
    returns the hold on `budget` of the pixels it will decode. The caller must drop its last
    reference to `image` inside the hold: a decoder's own buffers (WebP's canvases) live as long as
    the image object, not only its pixels."""
    image.draft("RGB", size)
    if budget is None:
        return contextlib.nullcontext()
    return budget.hold(image.size[0] * image.size[1])


def _upright_srgb(image: Image.Image, size: tuple[int, int], orientation: int, max_pixels: int) -> Image.Image:
    """`image` (drafted by _decoding) decoded, resized to `size`, in sRGB (RGB or RGBA), turned
    upright and stripped of every piece of the original's metadata. The full-size pixels are
    released before this returns; `image` must not be used after."""
    icc_profile = image.info.get("icc_profile")
    current = _reduced(image, size, max_pixels)
    if current is not image:
        image.close()  # the full-size pixels go now, not when the image object does
    current = _to_srgb(current, icc_profile)
    if orientation in _UPRIGHT:
        current = current.transpose(_UPRIGHT[orientation])
    # Nothing of the original's metadata (EXIF with GPS, XMP, comments, ICC) may reach a rendition.
    current.info = {}
    return current


def _reduced(image: Image.Image, size: tuple[int, int], max_pixels: int) -> Image.Image:
    """`image` decoded, in its working mode (see _working_mode), resized to `size`."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, RuntimeError) as exc:
        raise UnusableImage(f"the image is truncated or corrupt ({_short(exc)}); upload the file again") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnusableImage(_too_many_pixels(max_pixels, image.size)) from exc

    current: Image.Image = image
    if current.mode.startswith("I"):
        # 16-bit grey PNG: scale to 8 bits (a plain conversion would clip everything above 255 to white).
        current = current.convert("I").point(lambda v: v / 257).convert("L")
    working = _working_mode(current)
    current = current.convert(working) if current.mode != working else current
    return _resized(current, *size)


def _open(raw: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The image and our name of its format, header parsed and integrity checked but not decoded;
    UnusableImage if it is not an image we accept, or has too many pixels to decode."""
    try:
        with Image.open(io.BytesIO(raw), formats=_PARSERS) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise UnusableImage(_too_many_pixels(max_pixels, (width, height)))
            # Checks chunk CRCs of PNGs (cheap; no decoding). The file must be reopened after it.
            probe.verify()
        image = Image.open(io.BytesIO(raw), formats=_PARSERS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (see refuse_decompression_bombs), met before ours for absurd headers.
        raise UnusableImage(_too_many_pixels(max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise UnusableImage(_not_an_image(raw)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, RuntimeError) as exc:
        raise UnusableImage(f"the image is truncated or corrupt ({_short(exc)}); upload the file again") from exc
    real_format = ACCEPTED_FORMATS.get(image.format or "")
    if real_format is None:
        raise UnusableImage(f"the file is a {image.format} image, which is not supported; upload {ACCEPTED_NAMES}")
    if getattr(image, "n_frames", 1) > 1:
        # An animated WebP or AVIF, or a HEIF burst: the first frame stands for it, as a still photo.
        image.seek(0)
    return image, real_format


def _not_an_image(raw: bytes) -> str:
    accepted = f"upload {ACCEPTED_NAMES}"
    for magic, name in _OTHER_FORMATS:
        if raw.startswith(magic):
            return f"the file is {name}, which is not supported; {accepted}"
    if raw[4:8] == b"ftyp" and raw[8:12] in _ISO_BMFF_IMAGE_BRANDS:
        return (
            "the file looks like a HEIC/AVIF image but cannot be read (truncated, corrupt, or a variant "
            "not supported here); upload it again, or export it as JPEG"
        )
    return f"the file is not an image; {accepted}"


def _too_many_pixels(max_pixels: int, size: tuple[int, int] | None = None) -> str:
    found = f" ({size[0]}x{size[1]})" if size else ""
    return (
        f"the image has more pixels{found} than the {max_pixels / 1e6:g}-megapixel limit "
        "(a possible decompression bomb); upload a smaller image"
    )


def _short(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0][:120] or type(exc).__name__


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation to undo. HEIF files are already upright when decoded (libheif applies
    their rotation boxes and the plugin resets the EXIF tag to 1); AVIF's boxes arrive as this tag."""
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError):
        return 1  # unreadable EXIF: show the pixels as stored
    return value if isinstance(value, int) else 1


def _working_mode(image: Image.Image) -> str:
    """The mode pixels are resized in: the decoded colour channels (grey, RGB or CMYK, the one the
    embedded profile describes), plus alpha if the image has any transparency (WebP keeps it)."""
    has_alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    if image.mode == "CMYK":
        return "CMYK"  # Pillow has no CMYK with alpha, and JPEG none either
    if image.mode in _GREY_MODES:
        return "LA" if has_alpha else "L"
    return "RGBA" if has_alpha else "RGB"


def _fit(width: int, height: int, longest: int) -> tuple[int, int]:
    """The size with the longest side at most `longest`, aspect kept, never larger than (width, height)."""
    side = max(width, height)
    if side <= longest:
        return width, height
    scale = longest / side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _cover(width: int, height: int, shortest: int) -> tuple[int, int]:
    """The size with the shorter side at most `shortest`, aspect kept, never larger than (width, height)."""
    side = min(width, height)
    if side <= shortest:
        return width, height
    scale = shortest / side
    return max(shortest, round(width * scale)), max(shortest, round(height * scale))


def _resized(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), RESAMPLE, reducing_gap=REDUCING_GAP)


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """The pixels in sRGB (the colour space browsers assume) as RGB, or RGBA if `image` has alpha.

    With an embedded profile the colour channels are converted through it; alpha is carried over
    as it is. A profile that cannot be used is logged and counted, and the pixels taken as sRGB.
    """
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    colour = image.convert(image.mode[:-1]) if alpha is not None else image
    converted = _through_profile(colour, icc_profile) if icc_profile else None
    if converted is None:
        converted = colour if colour.mode == "RGB" else colour.convert("RGB")
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _through_profile(colour: Image.Image, icc_profile: bytes) -> Image.Image | None:
    """`colour` (L, RGB or CMYK) converted from `icc_profile` to sRGB, as RGB; None if the profile
    cannot be applied (then logged and counted by reason)."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        space = source.profile.xcolor_space.strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        _fallback("unreadable", exc, colour.mode)
        return None
    mode = _MODE_FOR_SPACE.get(space)
    if mode is None:
        _fallback("unsupported_space", f"profile colour space {space!r}", colour.mode)
        return None
    if colour.mode != mode:
        if (colour.mode, mode) not in _COMPATIBLE:
            _fallback("mismatch", f"{colour.mode} pixels with a {space} profile", colour.mode)
            return None
        colour = colour.convert(mode)
    try:
        return ImageCms.profileToProfile(colour, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        _fallback("transform_failed", exc, colour.mode)
        return None


def _fallback(reason: str, error: object, mode: str) -> None:
    # Deliberate: the photo is still published (as if it carried no profile), never refused, but
    # an operator sees how often and why, and a wrong-looking photo can be traced to its cause.
    COLOUR_PROFILE_FALLBACKS.labels(reason=reason).inc()
    detail = _short(error) if isinstance(error, BaseException) else str(error)
    log.warning(
        "embedded colour profile not applied; pixels taken as sRGB",
        extra={"reason": reason, "error": detail, "mode": mode},
    )


def _encode_webp(image: Image.Image, method: int) -> bytes:
    out = io.BytesIO()
    # exif/icc_profile/xmp are deliberately not passed, so the file carries none.
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=method)
    return out.getvalue()


def _components(width: int, height: int) -> tuple[int, int]:
    x, y = BLURHASH_COMPONENTS
    return (x, y) if width >= height else (y, x)
