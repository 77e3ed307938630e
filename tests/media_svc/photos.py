"""Test photos, made with Pillow: each one exercises one thing the rendition worker must get right."""

from __future__ import annotations

import io
import struct
import zlib

import pillow_heif
from PIL import ExifTags, Image

# Saving HEIF needs the plugin registered (media_svc.images registers it for reading too).
pillow_heif.register_heif_opener()

RED, GREEN, BLUE, YELLOW = (230, 20, 20), (20, 200, 40), (30, 40, 220), (240, 220, 30)
QUADRANT_COLOURS = (RED, GREEN, BLUE, YELLOW)  # top-left, top-right, bottom-left, bottom-right
CAMERA = "GlimpseTestCam"


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def quadrants(width: int, height: int) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, yellow bottom-right: any rotation or flip
    of it is recognisable from its corners."""
    image = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    image.paste(RED, (0, 0, half_w, half_h))
    image.paste(GREEN, (half_w, 0, width, half_h))
    image.paste(BLUE, (0, half_h, half_w, height))
    image.paste(YELLOW, (half_w, half_h, width, height))
    return image


def camera_exif(orientation: int) -> Image.Exif:
    """EXIF as a phone writes it: orientation, camera make and where the photo was taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = CAMERA
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (48.0, 51.0, 29.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (2.0, 17.0, 40.0),
    }
    return exif


def phone_jpeg(width: int = 3000, height: int = 2000, orientation: int = 6) -> bytes:
    """A landscape photo stored sideways, as phones store portrait shots, with GPS in its EXIF."""
    return encoded(quadrants(width, height), "JPEG", quality=90, exif=camera_exif(orientation))


def phone_heic(
    width: int = 1200, height: int = 800, orientation: int = 6, *, icc_profile: bytes | None = None, thumbnail: int = 0
) -> bytes:
    """A HEIC as an iPhone writes it: pixels stored as the sensor saw them with a rotation box
    (irot) saying how to show them, EXIF with GPS, optionally a colour profile and a thumbnail."""
    image = quadrants(width, height)
    # pillow-heif writes the rotation box from the image's own EXIF (a `exif=` argument would only
    # be copied as metadata, which HEIF readers must ignore for orientation).
    image.info["exif"] = camera_exif(orientation).tobytes()
    params: dict[str, object] = {"quality": 90}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if thumbnail:
        params["thumbnails"] = [thumbnail]
    return encoded(image, "HEIF", **params)


def transparent_png(width: int = 800, height: int = 600) -> bytes:
    """Opaque green on the left half, fully transparent on the right half."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    image.paste((20, 200, 40, 255), (0, 0, width // 2, height))
    return encoded(image, "PNG")


def tiny_jpeg() -> bytes:
    return encoded(quadrants(100, 80), "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    """A real JPEG cut off part-way through its image data, as a failed upload leaves it."""
    full = encoded(Image.effect_noise((800, 600), 50).convert("RGB"), "JPEG", quality=90)
    return full[: len(full) * 6 // 10]


def png_declaring(width: int, height: int) -> bytes:
    """A tiny real PNG whose header claims `width` x `height` pixels (a decompression bomb's shape).

    The IHDR chunk's CRC is recomputed, so only the size is a lie and the file still parses.
    """
    data = bytearray(encoded(Image.new("RGB", (8, 8), "white"), "PNG"))
    # Signature (8 bytes), then IHDR: length (4), type (4), width (4), height (4), ... , CRC (4).
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


NOT_AN_IMAGE = b"Dear diary, today I renamed a text file to holiday.jpg.\n" * 20


# ICC profiles, written byte by byte (ICC.1:2001-04, version 2): the smallest profiles LittleCMS
# accepts, so each test controls exactly what its photo's profile says.

_D50 = (0.9642, 1.0, 0.8249)
# Linear sRGB -> XYZ relative to D50 (Bradford-adapted), the matrix of every sRGB profile.
_SRGB_TO_XYZ_D50 = (
    (0.4360747, 0.3850649, 0.1430804),
    (0.2225045, 0.7168786, 0.0606169),
    (0.0139322, 0.0971045, 0.7141733),
)


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15f16(v) for v in xyz)


def _gamma_tag(gamma: float) -> bytes:
    # curveType with one entry: a pure power function, the exponent as u8Fixed8.
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def _text_tag(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts.
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def icc_profile(device_class: bytes, colour_space: bytes, tags: dict[bytes, bytes]) -> bytes:
    """A version-2 profile of `colour_space` (b"GRAY", b"RGB ", b"CMYK") with XYZ as its PCS."""
    count = len(tags)
    offset = 128 + 4 + 12 * count
    table, data = b"", b""
    for signature, body in tags.items():
        body += b"\0" * (-len(body) % 4)  # tags start on 4-byte boundaries
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"none"
        + bytes((2, 0x10, 0, 0))
        + device_class
        + colour_space
        + b"XYZ "
        + b"\0" * 12  # date
        + b"acsp"
        + b"\0" * 24  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual
        + b"".join(_s15f16(v) for v in _D50)
        + b"\0" * 48  # creator, id, reserved
    )
    assert len(header) == 128
    return header + struct.pack(">I", count) + table + data


def grey_gamma_profile(gamma: float = 1.8) -> bytes:
    """A grey profile whose tone curve is `gamma` (old Mac scanners and printers wrote 1.8)."""
    return icc_profile(
        b"mntr",
        b"GRAY",
        {b"desc": _text_tag(f"Grey gamma {gamma}"), b"wtpt": _xyz_tag(_D50), b"kTRC": _gamma_tag(gamma)},
    )


def rgb_gamma_profile(gamma: float = 1.8) -> bytes:
    """sRGB's primaries with a pure `gamma` tone curve on each channel (like the old Apple RGB)."""
    columns = list(zip(*_SRGB_TO_XYZ_D50, strict=True))
    curve = _gamma_tag(gamma)
    return icc_profile(
        b"mntr",
        b"RGB ",
        {
            b"desc": _text_tag(f"RGB gamma {gamma}"),
            b"wtpt": _xyz_tag(_D50),
            b"rXYZ": _xyz_tag(columns[0]),  # type: ignore[arg-type]
            b"gXYZ": _xyz_tag(columns[1]),  # type: ignore[arg-type]
            b"bXYZ": _xyz_tag(columns[2]),  # type: ignore[arg-type]
            b"rTRC": curve,
            b"gTRC": curve,
            b"bTRC": curve,
        },
    )


def _srgb_to_linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


# What each full-strength ink of the test press looks like on white paper, in sRGB.
PRESS_CYAN, PRESS_MAGENTA, PRESS_YELLOW = (0, 160, 225), (236, 0, 140), (255, 240, 0)
_PRESS_BLACK_REFLECTANCE = 0.03


def cmyk_press_profile() -> bytes:
    """An output profile of a made-up press: each ink filters light like the colours above (a
    Neugebauer model: the 16 ink combinations are products of the inks' reflectances), tabulated
    in a 2-point-per-ink lut16 as A2B0. Its cyan is (0, 160, 225) where a naive conversion of
    CMYK (255, 0, 0, 0) gives (0, 255, 255)."""
    inks = [tuple(_srgb_to_linear(c) for c in ink) for ink in (PRESS_CYAN, PRESS_MAGENTA, PRESS_YELLOW)]
    inks.append((_PRESS_BLACK_REFLECTANCE,) * 3)
    clut = b""
    # The first input channel (C) varies slowest.
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    linear = [1.0, 1.0, 1.0]
                    for used, ink in zip((c, m, y, k), inks, strict=True):
                        if used:
                            linear = [a * b for a, b in zip(linear, ink, strict=True)]
                    xyz = [sum(row[i] * linear[i] for i in range(3)) for row in _SRGB_TO_XYZ_D50]
                    # lut16's XYZ encoding: 0x8000 is 1.0.
                    clut += struct.pack(">3H", *(min(65535, round(v * 32768)) for v in xyz))
    identity = b"".join(_s15f16(1.0 if i == j else 0.0) for i in range(3) for j in range(3))
    ramp = struct.pack(">2H", 0, 65535)
    lut = b"mft2\0\0\0\0" + bytes((4, 3, 2, 0)) + identity + struct.pack(">HH", 2, 2) + ramp * 4 + clut + ramp * 3
    return icc_profile(b"prtr", b"CMYK", {b"desc": _text_tag("Test press"), b"wtpt": _xyz_tag(_D50), b"A2B0": lut})


def patches(mode: str, values: tuple[int, ...], patch: tuple[int, int] = (120, 120)) -> Image.Image:
    """Flat patches of grey `values` side by side, in `mode` (grey in every channel, opaque)."""
    width, height = patch
    image = Image.new("L", (width * len(values), height))
    for i, value in enumerate(values):
        image.paste(value, (i * width, 0, (i + 1) * width, height))
    return image.convert(mode)
