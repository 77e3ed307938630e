"""Avatars: the worker's square avatar pipeline beside its post pipeline on the same photos.

    python -m bench avatars        (or: python -m bench.avatars)

Single-threaded, in this process, the two pipelines taking turns for about 4 s per photo:
  avatar   media_svc.images.render_avatar: bytes in -> upright, centre-cropped 320 and 150 px WebP
           squares without metadata, blurhash, checksum (what a profile picture costs the worker)
  post     media_svc.images.render: the 1080/640/150 px renditions of a post's photo, the floor
           a picture is measured against (an avatar should cost no more than a post's photo)
on the photos of ../shared/datasets/photos (real JPEGs and PNGs) and on a generated 12-MP phone JPEG
stored sideways with EXIF (as phones write portraits). Figures are printed, never asserted.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from PIL import ExifTags, Image

from bench.stats import peak_rss_line
from media_svc.images import free_decoded_pixels_at_once, render, render_avatar

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"
MAX_PIXELS = 50_000_000
SECONDS_PER_PHOTO = 4.0


def phone_jpeg(width: int, height: int) -> bytes:
    """A photo stored sideways with EXIF orientation 6 and GPS, as phones write portraits: a gradient
    under a grid, so the encoder has real detail to work on."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    for x in range(0, width, 97):
        image.paste((200, 40, 40), (x, 0, x + 3, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.IFD.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (48.0, 51.0, 29.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def measure(raw: bytes) -> tuple[float, float]:
    """(avatar s/image, post s/image), the two pipelines alternating in 0.2 s turns for SECONDS_PER_PHOTO."""
    spent = {"avatar": 0.0, "post": 0.0}
    made = {"avatar": 0, "post": 0}
    until = time.perf_counter() + SECONDS_PER_PHOTO
    while time.perf_counter() < until:
        for name, pipeline in (("avatar", render_avatar), ("post", render)):
            turn_end = time.perf_counter() + 0.2
            while time.perf_counter() < turn_end:
                started = time.perf_counter()
                pipeline(raw, max_pixels=MAX_PIXELS)
                spent[name] += time.perf_counter() - started
                made[name] += 1
    return spent["avatar"] / made["avatar"], spent["post"] / made["post"]


def main() -> None:
    free_decoded_pixels_at_once()  # as the worker
    cases = [(path.name, path.read_bytes()) for path in sorted(DATASET.glob("*")) if path.is_file()]
    cases.append(("phone 4000x3000 JPEG, EXIF orientation 6", phone_jpeg(4000, 3000)))
    print(f"{'photo':<44} {'avatar ms':>10} {'post ms (floor)':>16} {'ratio':>6}")
    for name, raw in cases:
        avatar, post = measure(raw)
        sides = [r.width for r in render_avatar(raw, max_pixels=MAX_PIXELS).renditions]
        print(f"{name:<44} {avatar * 1000:>10.1f} {post * 1000:>16.1f} {avatar / post:>6.2f}  squares {sides}")
    print(peak_rss_line())


if __name__ == "__main__":
    main()
