"""Test photos, made with Pillow: each one exercises one thing the rendition worker must get right."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image

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
