"""The rendition pipeline: raw upload bytes in, upright metadata-free WebP renditions and a blurhash out.

Pure CPU work with no I/O, so the worker runs it in a thread and the benchmark calls it directly.
Every way an upload can be unusable raises `UnusableImage` with a reason a person can act on;
anything else escaping from here is a bug (or memory exhaustion), not a bad photo.

Speed comes from decoding as little as possible: JPEG draft mode lets libjpeg decode straight to
a power-of-two reduction that is still at least as large as the biggest rendition, each rendition
is resized from the previous (smaller) one, and orientation and colour conversion run on the
first rendition rather than on the full-size image.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from media_svc import blurhash

# Longest side of each rendition, largest first (each is made from the one before it).
RENDITION_SIZES = (1080, 640, 150)
# Pillow's names of the formats we accept, and ours. MPO is a JPEG with extra frames appended
# (many phones write it); its first frame is the photo.
ACCEPTED_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp"}
# Only these parsers ever see an upload: less attack surface.
_PARSERS = ("JPEG", "PNG", "WEBP")
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
BLURHASH_COMPONENTS = (4, 3)

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
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")
_SRGB = ImageCms.createProfile("sRGB")


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


def refuse_decompression_bombs(max_pixels: int) -> None:
    """Makes Pillow itself refuse images above `max_pixels` in this process: its warning becomes an
    error. A second line behind `render`'s own check (which runs first); call once at start-up,
    since Pillow's limit and the warning filters are process-wide."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def render(raw: bytes, *, max_pixels: int, webp_method: int = WEBP_METHOD) -> Rendering:
    """Renditions (1080, 640 and 150 px, never upscaled), blurhash and checksum of an upload.

    Raises UnusableImage if `raw` is not a JPEG, PNG or WebP image, is truncated or corrupt, or
    has more than `max_pixels` pixels (a decompression bomb, or simply too large to process).
    """
    checksum = hashlib.sha256(raw).hexdigest()
    image = _open(raw, max_pixels)
    real_format = ACCEPTED_FORMATS.get(image.format or "")
    if real_format is None:
        raise UnusableImage(f"the file is a {image.format} image, which is not supported; upload a JPEG, PNG or WebP")
    orientation = _orientation(image)
    stored_w, stored_h = image.size
    icc_profile = image.info.get("icc_profile")

    first_w, first_h = _fit(stored_w, stored_h, RENDITION_SIZES[0])
    if real_format == "jpeg":
        # Decode at 1/2, 1/4 or 1/8 scale when that still covers the largest rendition.
        image.draft("RGB", (first_w, first_h))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnusableImage(f"the image is truncated or corrupt ({_short(exc)}); upload the file again") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnusableImage(_too_many_pixels(max_pixels, (stored_w, stored_h))) from exc

    current: Image.Image = image
    if current.mode.startswith("I"):
        # 16-bit grey PNG: scale to 8 bits (a plain conversion would clip everything above 255 to white).
        current = current.convert("I").point(lambda v: v / 257).convert("L")
    working = _working_mode(current)
    current = current.convert(working) if current.mode != working else current
    current = _resized(current, first_w, first_h)
    current = _to_srgb(current, icc_profile)
    if orientation in _UPRIGHT:
        current = current.transpose(_UPRIGHT[orientation])
    # Nothing of the original's metadata (EXIF with GPS, XMP, comments, ICC) may reach a rendition.
    current.info = {}

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


def _open(raw: bytes, max_pixels: int) -> Image.Image:
    """The image, header parsed and integrity checked but not decoded; UnusableImage if it is not one."""
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
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnusableImage(f"the image is truncated or corrupt ({_short(exc)}); upload the file again") from exc
    if getattr(image, "n_frames", 1) > 1:
        # An animated WebP: the first frame stands for it, as a still photo.
        image.seek(0)
    return image


def _not_an_image(raw: bytes) -> str:
    accepted = "upload a JPEG, PNG or WebP image"
    for magic, name in _OTHER_FORMATS:
        if raw.startswith(magic):
            return f"the file is {name}, which is not supported; {accepted}"
    if raw[4:8] == b"ftyp" and raw[8:12] in _HEIF_BRANDS:
        kind = "an AVIF" if raw[8:12] == b"avif" else "a HEIC/HEIF"
        return f"the file is {kind} image, which is not supported yet; {accepted} (e.g. export it as JPEG)"
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
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError):
        return 1  # unreadable EXIF: show the pixels as stored
    return value if isinstance(value, int) else 1


def _working_mode(image: Image.Image) -> str:
    """RGBA if the image has any transparency (WebP keeps it), else RGB; CMYK stays CMYK for its profile."""
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        return "CMYK"
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return "RGBA"
    return "RGB"


def _fit(width: int, height: int, longest: int) -> tuple[int, int]:
    """The size with the longest side at most `longest`, aspect kept, never larger than (width, height)."""
    side = max(width, height)
    if side <= longest:
        return width, height
    scale = longest / side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), RESAMPLE, reducing_gap=REDUCING_GAP)


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """The pixels in sRGB (the colour space browsers assume), converted through an embedded profile."""
    target = "RGBA" if image.mode == "RGBA" else "RGB"
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=target)
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a broken profile: its pixels are most likely sRGB anyway
        if converted is not None:
            return converted
    return image if image.mode == target else image.convert(target)


def _encode_webp(image: Image.Image, method: int) -> bytes:
    out = io.BytesIO()
    # exif/icc_profile/xmp are deliberately not passed, so the file carries none.
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=method)
    return out.getvalue()


def _components(width: int, height: int) -> tuple[int, int]:
    x, y = BLURHASH_COMPONENTS
    return (x, y) if width >= height else (y, x)
