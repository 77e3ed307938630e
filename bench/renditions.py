"""Renditions: the worker's pipeline beside a naive Pillow pipeline and beside libvips; then the
rendition worker's peak memory on 12-MP and 50-MP photos.

    python -m bench renditions        (or: python -m bench.renditions)

Speed (issue 12, target 4). Single-threaded, in this process, on the same generated photo
(4000x3000, colour gradients under noise at several scales, JPEG quality 90, no colour profile),
the pipelines taking turns for 30 s:
  worker   media_svc.images.render: bytes in -> 1080/640/150 WebP renditions, blurhash, checksum out
           (JPEG draft decoding, each rendition resized from the one before, WebP method 2), and
           the same with libwebp's default effort (method 4), to show what each part is worth
  naive    full decode, a Lanczos resize of the full image for each size, WebP save with defaults
  libvips  the floor: the same three sizes as the worker's, WebP at the same quality and effort,
           metadata stripped, made the way libvips is meant to be used: thumbnail_buffer (shrink-on-
           load, then Lanczos 3), each smaller size from the one before it (kept in memory); one
           libvips thread and its operation cache off (else repeated runs would be served from it);
           also on libvips's own threads, for information. pyvips on Debian's libvips42, which this
           benchmark installs (apt-get) when it is missing.
Targets: the worker >= 3x the naive pipeline, and at most 1.3x libvips's time per image.

Memory (target 5). The real rendition worker in its own process (bench.stack: post_svc, media_svc
and media_svc.worker), restarted before each case so that its peak resident set (VmHWM) is that
case's. Each case uploads its photos as a client does (upload grant, form POST) and posts them; the
worker makes their placeholders and renditions while the benchmark waits for READY. Each peak is
printed beside the worker's peak when idle and beside media_svc.renditions.memory_bound for the
worker's settings. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import io
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import grpc
import httpx
from PIL import Image, ImageChops

from bench.stack import Stack, peak_rss_of, running_stack
from bench.stats import Sample, peak_rss_line
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from media_svc.images import (
    DECODED_BYTES_PER_PIXEL,
    RENDITION_SIZES,
    WEBP_METHOD,
    WEBP_QUALITY,
    free_decoded_pixels_at_once,
    render,
)
from media_svc.renditions import memory_bound
from media_svc.settings import MediaSettings
from mesh.identity import as_caller

TARGET_SPEEDUP = 3.0
TARGET_OF_LIBVIPS = 1.3
PHOTO_SIZE = (4000, 3000)
BIG_PHOTO_SIZE = (8660, 5773)  # 50 MP, the worker's default limit, in a phone's 3:2
MAX_PIXELS = 50_000_000
SECONDS = 30.0
MEMORY_STACK = ["post_svc", "media_svc", "media_svc.worker"]
READY_WITHIN = 180.0
MiB = 2**20


def make_photo(size: tuple[int, int] = PHOTO_SIZE, quality: int = 90) -> bytes:
    """A JPEG with detail left at rendition sizes, so (like a photo) it costs real work to decode,
    resize and encode: colour gradients under noise made at 1/64 .. 1/1 scale."""
    out = io.BytesIO()
    photo_pixels(size).save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo_pixels(size: tuple[int, int]) -> Image.Image:
    """make_photo's picture, not encoded."""
    width, height = size
    horizontal = Image.linear_gradient("L").rotate(90).resize(size)
    vertical = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    photo = Image.merge("RGB", (horizontal, vertical, radial))
    for scale, weight in ((64, 0.3), (16, 0.25), (4, 0.15), (1, 0.1)):
        small = (max(1, width // scale), max(1, height // scale))
        noise = Image.merge("RGB", [Image.effect_noise(small, 60) for _ in range(3)])
        photo = ImageChops.blend(photo, noise.resize(size, Image.Resampling.BICUBIC), weight)
    return photo


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


def libvips() -> ModuleType:
    """pyvips, with Debian's libvips42 installed first if the library is missing (as root, the way
    this machine kind installs system packages); exits with what to do if it cannot be."""
    if ctypes.util.find_library("vips") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit("bench renditions: libvips is missing; install Debian's libvips42 (apt-get install libvips42)")
        print("  installing Debian's libvips42 for the libvips floor (apt-get) ...", flush=True)
        install = ["apt-get", "install", "-y", "--no-install-recommends", "libvips42"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        installed = subprocess.run(install, env=env, capture_output=True, text=True)
        if installed.returncode != 0:
            # A fresh machine's package lists may be missing or stale.
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            installed = subprocess.run(install, env=env, capture_output=True, text=True)
        if installed.returncode != 0:
            sys.exit(f"bench renditions: apt-get could not install libvips42:\n{installed.stderr[-2000:]}")
    # Imported here: importing it loads libvips, which may just have been installed.
    import pyvips

    # Repeating an operation on the same buffer would otherwise be answered from libvips's cache.
    pyvips.cache_set_max(0)
    return pyvips


def libvips_renditions(pyvips: ModuleType, raw: bytes, sizes: list[tuple[int, int]]) -> list[bytes]:
    """The floor: `sizes` (the worker's, largest first) made with libvips as its authors advise."""
    first_w, first_h = sizes[0]
    # Shrink-on-load (a JPEG is decoded at 1/2, 1/4 or 1/8 scale), autorotate, then Lanczos 3;
    # kept in memory, since libvips is lazy and would otherwise decode again for each size.
    image = pyvips.Image.thumbnail_buffer(raw, first_w, height=first_h, size="force").copy_memory()
    outputs = []
    for width, height in sizes:
        if (image.width, image.height) != (width, height):
            image = image.thumbnail_image(width, height=height, size="force").copy_memory()
        outputs.append(image.webpsave_buffer(Q=WEBP_QUALITY, effort=WEBP_METHOD, strip=True))
    return outputs


def measure(pipelines: dict[str, Callable[[], object]], seconds: float) -> list[Sample]:
    """Runs every pipeline once as a warm-up, then one run of each in turn until `seconds` have
    passed (at least twice each): whatever else the machine does meanwhile slows them alike, so
    their ratios hold better than those of back-to-back measurements. A Sample per pipeline, its
    wall time the sum of its own runs."""
    for work in pipelines.values():
        work()
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    started = time.perf_counter()
    while min(len(t) for t in times.values()) < 2 or time.perf_counter() - started < seconds:
        for name, work in pipelines.items():
            t = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - t)
    return [Sample(name, t, sum(t), len(t), unit="images") for name, t in times.items()]


def speed(seconds: float) -> None:
    free_decoded_pixels_at_once()  # as the worker does; applies to every pipeline in this process
    pyvips = libvips()
    raw = make_photo()
    rendering = render(raw, max_pixels=MAX_PIXELS)
    sizes = [(r.width, r.height) for r in rendering.renditions]
    floor_files = libvips_renditions(pyvips, raw, sizes)
    print(f"input: {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG q90, {len(raw) / 1e6:.1f} MB; single thread")
    print(
        "  worker renditions:  "
        + ", ".join(f"{r.width}x{r.height} {len(r.webp) // 1024} KiB" for r in rendering.renditions)
        + f"; blurhash {rendering.blurhash}"
    )
    print("  naive renditions:   " + ", ".join(f"{len(webp) // 1024} KiB" for webp in naive_renditions(raw)))
    vips_sizes = [Image.open(io.BytesIO(webp)).size for webp in floor_files]
    print(
        f"  libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}: "
        + ", ".join(f"{w}x{h} {len(webp) // 1024} KiB" for (w, h), webp in zip(vips_sizes, floor_files, strict=True))
        + (" (the worker's sizes)" if vips_sizes == sizes else " (NOT the worker's sizes)")
    )

    threads = pyvips.concurrency_get()

    def libvips_on(n: int) -> Callable[[], object]:
        def run() -> object:
            pyvips.concurrency_set(n)
            return libvips_renditions(pyvips, raw, sizes)

        return run

    worker, default_effort, naive, floor, threaded = measure(
        {
            f"worker pipeline (WebP method {WEBP_METHOD})": lambda: render(raw, max_pixels=MAX_PIXELS),
            "worker pipeline (WebP method 4)": lambda: render(raw, max_pixels=MAX_PIXELS, webp_method=4),
            "naive pipeline": lambda: naive_renditions(raw),
            "floor: libvips, 1 thread": libvips_on(1),
            f"libvips, its {threads} threads (information)": libvips_on(threads),
        },
        seconds,
    )
    for sample in (worker, default_effort, naive, floor, threaded):
        print(sample.line())
    speedup = worker.rate / naive.rate
    of_floor = floor.rate / worker.rate
    print(
        f"  => worker {worker.rate:.2f} images/s vs naive {naive.rate:.2f} images/s: {speedup:.2f}x "
        f"(target >= {TARGET_SPEEDUP:g}x: {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}); "
        f"with WebP method 4: {default_effort.rate / naive.rate:.2f}x"
    )
    print(
        f"  => worker time per image {of_floor:.2f}x libvips's, both on one thread "
        f"(target <= {TARGET_OF_LIBVIPS:g}x: {'met' if of_floor <= TARGET_OF_LIBVIPS else 'NOT met'})"
    )
    print(peak_rss_line())


@dataclass(frozen=True)
class Upload:
    """One memory case: `count` copies of a photo, posted together (so rendered at the same time)."""

    name: str
    content_type: str
    raw: bytes
    count: int = 1


def memory_cases() -> list[Upload]:
    """A phone's 12-MP JPEG, and 50-MP uploads: a JPEG (decoded at 1/8 scale), then the two that
    cost the most per pixel among those always decoded whole (WebP, a PNG with alpha), then two
    WebPs in one post (rendered at the same time unless the pixel budget says otherwise)."""
    big = photo_pixels(BIG_PHOTO_SIZE)
    jpeg, webp = io.BytesIO(), io.BytesIO()
    big.save(jpeg, "JPEG", quality=85)
    big.save(webp, "WEBP", quality=80, method=0)
    del big
    # A graphic rather than a photo, or it would not fit the upload size limit as a PNG.
    shade = Image.linear_gradient("L").resize(BIG_PHOTO_SIZE)
    graphic = io.BytesIO()
    Image.merge("RGBA", (shade, shade.transpose(Image.Transpose.ROTATE_180), shade, shade)).save(graphic, "PNG")
    mp = f"{BIG_PHOTO_SIZE[0] * BIG_PHOTO_SIZE[1] / 1e6:.0f}-MP"
    return [
        Upload("12-MP JPEG", "image/jpeg", make_photo()),
        Upload(f"{mp} JPEG", "image/jpeg", jpeg.getvalue()),
        Upload(f"{mp} WebP", "image/webp", webp.getvalue()),
        Upload(f"{mp} PNG with alpha", "image/png", graphic.getvalue()),
        Upload(f"2 x {mp} WebP in one post", "image/webp", webp.getvalue(), count=2),
    ]


async def post_and_wait(stack: Stack, case: Upload, owner: int) -> float:
    """Uploads and posts the case's photos as `owner`; seconds from CreatePost to every one READY.
    RuntimeError if one FAILED or is not READY within READY_WITHIN."""
    caller = as_caller(owner)
    async with (
        grpc.aio.insecure_channel(stack.addr["media_svc"]) as media_channel,
        grpc.aio.insecure_channel(stack.addr["post_svc"]) as post_channel,
        httpx.AsyncClient(timeout=60) as store,
    ):
        media = media_pb2_grpc.MediaServiceStub(media_channel)
        media_ids = []
        for _ in range(case.count):
            grant = await media.CreateUploadGrant(
                media_pb2.CreateUploadGrantRequest(content_type=case.content_type, size_bytes=len(case.raw)),
                metadata=caller,
            )
            sent = await store.post(
                grant.url, data=dict(grant.form_fields), files={"file": ("photo", case.raw, case.content_type)}
            )
            if sent.status_code not in (200, 201, 204):
                raise RuntimeError(f"upload refused by the store: {sent.status_code} {sent.text[:200]}")
            media_ids.append(grant.media_id)
        posts = post_pb2_grpc.PostServiceStub(post_channel)
        started = time.perf_counter()
        request = post_pb2.CreatePostRequest(caption=case.name, media_ids=media_ids, request_id=uuid.uuid4().hex)
        await posts.CreatePost(request, metadata=caller)
        while True:
            found = await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=media_ids), metadata=caller)
            failed = [m.failure_reason for m in found.media if m.status == media_pb2.MEDIA_STATUS_FAILED]
            if failed:
                raise RuntimeError(f"{case.name}: rendition failed: {failed[0]}")
            if all(m.status == media_pb2.MEDIA_STATUS_READY for m in found.media):
                return time.perf_counter() - started
            if time.perf_counter() - started > READY_WITHIN:
                raise RuntimeError(f"{case.name}: not READY within {READY_WITHIN:.0f}s")
            await asyncio.sleep(0.05)


def memory() -> None:
    cases = memory_cases()
    settings = MediaSettings()
    bound = memory_bound(
        max_bytes=settings.media_max_bytes,
        max_pixels=settings.media_max_pixels,
        concurrency=settings.rendition_concurrency,
        placeholder_concurrency=settings.placeholder_concurrency,
    )
    print(
        f"rendition worker's peak RSS (VmHWM), a fresh worker per case (placeholders and renditions); "
        f"rendition_concurrency {settings.rendition_concurrency}, placeholder_concurrency "
        f"{settings.placeholder_concurrency}, media_max_pixels {settings.media_max_pixels / 1e6:g} M, "
        f"media_max_bytes {settings.media_max_bytes / MiB:g} MiB"
    )
    with running_stack(MEMORY_STACK) as stack:
        for n, case in enumerate(cases):
            if n:
                stack.kill("media_svc.worker")
                stack.start("media_svc.worker")
            worker = stack.running["media_svc.worker"].pid
            idle = peak_rss_of(worker) or 0
            took = asyncio.run(post_and_wait(stack, case, owner=1000 + n))
            peak = peak_rss_of(worker) or 0
            within = "within" if peak - idle <= bound else "ABOVE"
            size = f"{len(case.raw) / 1e6:.1f} MB" + (f" each, x{case.count}" if case.count > 1 else "")
            print(
                f"  {case.name:<32} ({size}): READY in {took:5.2f}s; peak {peak / MiB:4.0f} MiB = idle "
                f"{idle / MiB:.0f} + {(peak - idle) / MiB:4.0f} MiB ({within} the bound's {bound / MiB:.0f} MiB)"
            )
        print(peak_rss_line())
    print(
        f"  bound {bound / MiB:.0f} MiB above idle (media_svc.renditions.memory_bound): "
        f"{settings.rendition_concurrency + settings.placeholder_concurrency} uploads read at once (twice their "
        f"bytes while read), {settings.rendition_concurrency} renders' rendition-sized copies, and one pixel "
        f"budget ({settings.media_max_pixels / 1e6:g} M decoded pixels, shared by renders and placeholders) "
        f"x {DECODED_BYTES_PER_PIXEL} bytes, the most one decoded pixel costs (a WebP)"
    )


def main(seconds: float = SECONDS) -> None:
    speed(seconds)
    memory()


if __name__ == "__main__":
    main()
