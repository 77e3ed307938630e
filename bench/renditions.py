"""Rendition throughput: the worker's pipeline beside a naive Pillow pipeline, on a 12-megapixel JPEG.

    python -m bench renditions        (or: python -m bench.renditions)

Both run single-threaded, in this process, on the same generated photo (4000x3000, colour gradients
under noise at several scales, JPEG quality 90):
  worker   media_svc.images.render: bytes in -> 1080/640/150 WebP renditions, blurhash, checksum out
           (JPEG draft decoding, each rendition resized from the one before, WebP method 2), and
           the same with libwebp's default effort (method 4), to show what each part is worth
  naive    full decode, a Lanczos resize of the full image for each size, WebP save with defaults
Prints images/second of each, the speed-up and its target. Figures are printed, never asserted.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from PIL import Image, ImageChops

from bench.stats import Sample
from media_svc.images import RENDITION_SIZES, WEBP_METHOD, render

TARGET_SPEEDUP = 3.0
PHOTO_SIZE = (4000, 3000)
MAX_PIXELS = 50_000_000
SECONDS_PER_PIPELINE = 6.0


def make_photo(size: tuple[int, int] = PHOTO_SIZE, quality: int = 90) -> bytes:
    """A JPEG with detail left at rendition sizes, so (like a photo) it costs real work to decode,
    resize and encode: colour gradients under noise made at 1/64 .. 1/1 scale."""
    width, height = size
    horizontal = Image.linear_gradient("L").rotate(90).resize(size)
    vertical = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    photo = Image.merge("RGB", (horizontal, vertical, radial))
    for scale, weight in ((64, 0.3), (16, 0.25), (4, 0.15), (1, 0.1)):
        small = (max(1, width // scale), max(1, height // scale))
        noise = Image.merge("RGB", [Image.effect_noise(small, 60) for _ in range(3)])
        photo = ImageChops.blend(photo, noise.resize(size, Image.Resampling.BICUBIC), weight)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=quality)
    return out.getvalue()


def naive_renditions(raw: bytes) -> list[bytes]:
    """What a first attempt looks like: decode everything, resize the full image for each size."""
    image = Image.open(io.BytesIO(raw))
    image.load()
    outputs = []
    for size in RENDITION_SIZES:
        scale = min(1.0, size / max(image.size))
        dims = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        out = io.BytesIO()
        image.resize(dims, Image.Resampling.LANCZOS).save(out, "WEBP")
        outputs.append(out.getvalue())
    return outputs


def measure(name: str, work: Callable[[], object], seconds: float) -> Sample:
    """Runs `work` (after one warm-up run) until `seconds` have passed, at least twice."""
    work()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < 2 or time.perf_counter() - started < seconds:
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return Sample(name, times, time.perf_counter() - started, len(times), unit="images")


def main(seconds: float = SECONDS_PER_PIPELINE) -> None:
    raw = make_photo()
    rendering = render(raw, max_pixels=MAX_PIXELS)
    ours = ", ".join(f"{r.width}x{r.height} {len(r.webp) // 1024} KiB" for r in rendering.renditions)
    naive_sizes = ", ".join(f"{len(webp) // 1024} KiB" for webp in naive_renditions(raw))
    print(f"input: {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG q90, {len(raw) / 1e6:.1f} MB; single thread")
    print(f"  worker renditions: {ours}; blurhash {rendering.blurhash}")
    print(f"  naive renditions:  {naive_sizes}")

    worker = measure(
        f"worker pipeline (WebP method {WEBP_METHOD})", lambda: render(raw, max_pixels=MAX_PIXELS), seconds
    )
    default_effort = measure(
        "worker pipeline (WebP method 4)", lambda: render(raw, max_pixels=MAX_PIXELS, webp_method=4), seconds
    )
    naive = measure("naive pipeline", lambda: naive_renditions(raw), seconds)
    for sample in (worker, default_effort, naive):
        print(sample.line())
    speedup = worker.rate / naive.rate
    verdict = "met" if speedup >= TARGET_SPEEDUP else "NOT met"
    print(
        f"  => worker {worker.rate:.2f} images/s vs naive {naive.rate:.2f} images/s: {speedup:.2f}x "
        f"(target >= {TARGET_SPEEDUP:g}x: {verdict}); with WebP method 4: {default_effort.rate / naive.rate:.2f}x"
    )


if __name__ == "__main__":
    main()
