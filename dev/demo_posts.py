"""Demo content for `make run`: a few hundred posts by well-followed demo users, with real photos.

The photos are crops of the real ones in ../shared/datasets/photos (a different window of one of them
per post), or generated pictures where that folder is missing.

Runs against the live services (started by the same `make run`) the way a client would: an upload
grant per photo, the bytes POSTed straight to the object store, then CreatePost. Idempotent: an
author who already has posts is skipped, so a second `make run` adds nothing. It then stays idle,
because the supervisor (honcho) stops every process as soon as one exits.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import random
import signal
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image, ImageDraw

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from graph_svc.demo import DEMO_PASSWORD, USERNAME_PREFIX
from mesh.config import MeshSettings
from mesh.identity import as_caller

TAGS = ["reedcollege", "portland", "sunset", "coffee", "library", "rain", "friends", "thesis", "hike", "mthood"]
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"
WORDS = ["Golden hour", "Study break", "Finally done", "Weekend", "Morning walk", "Best view", "Quiet day"]


def photo(seed: int, width: int = 1280, height: int = 960) -> bytes:
    """A colourful generated JPEG (gradient sky, sun, hills) that differs per seed."""
    rng = random.Random(seed)
    top, bottom = [tuple(rng.randrange(256) for _ in range(3)) for _ in range(2)]
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    sun_x, sun_y, radius = rng.randrange(width), rng.randrange(height // 2), rng.randrange(40, 140)
    draw.ellipse([sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius], fill=(255, 230, 120))
    for layer in range(3):
        base = height * (0.55 + 0.12 * layer)
        phase, colour = rng.random() * 6, tuple(rng.randrange(30, 120) for _ in range(3))
        points = [(x, base + 40 * math.sin(x / 90 + phase + layer)) for x in range(0, width + 20, 20)]
        draw.polygon([(0, height), *points, (width, height)], fill=colour)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def crop_of(source: Path, seed: int, longest: int = 1600) -> bytes:
    """A JPEG of a window of `source` that differs per seed: 60-100% of each side, at most `longest` px."""
    rng = random.Random(seed)
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    w, h = int(width * rng.uniform(0.6, 1.0)), int(height * rng.uniform(0.6, 1.0))
    left, top = rng.randrange(width - w + 1), rng.randrange(height - h + 1)
    image = image.crop((left, top, left + w, top + h))
    image.thumbnail((longest, longest))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


async def wait_until_serving(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            try:
                if (await health.Check(health_pb2.HealthCheckRequest(), timeout=1)).status == 1:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"demo: {address} never became ready")


# What a busy machine answers now and then (a service's upstream took longer than its deadline, a
# process restarting): worth another try. Anything else is a bug the loader reports.
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
ATTEMPTS = 6


async def post_with_retries(
    media: media_pb2_grpc.MediaServiceStub,
    posts: post_pb2_grpc.PostServiceStub,
    store: httpx.AsyncClient,
    author: int,
    data: bytes,
    caption: str,
    request_id: str,
) -> None:
    """Uploads `data` as `author` and posts it, retrying transient failures with backoff (1, 2, 4, 8,
    16 s): each try takes a new grant; CreatePost's `request_id` makes a retried post count once."""
    for attempt in range(ATTEMPTS):
        try:
            grant = await media.CreateUploadGrant(
                media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=len(data)),
                metadata=as_caller(author),
                timeout=30,
            )
            sent = await store.post(
                grant.url, data=dict(grant.form_fields), files={"file": ("p.jpg", data, "image/jpeg")}
            )
            sent.raise_for_status()
            await posts.CreatePost(
                post_pb2.CreatePostRequest(caption=caption, media_ids=[grant.media_id], request_id=request_id),
                metadata=as_caller(author),
                timeout=30,
            )
            return
        except (grpc.aio.AioRpcError, httpx.TransportError) as exc:
            transient = not isinstance(exc, grpc.aio.AioRpcError) or exc.code() in TRANSIENT
            if not transient or attempt == ATTEMPTS - 1:
                raise
            print(f"demo: {request_id} failed ({describe(exc)}); trying again", flush=True)
            await asyncio.sleep(2**attempt)


def describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


async def load(settings: MeshSettings, authors: int, per_author: int, photos: list[Path]) -> int:
    for address in (settings.graph_addr, settings.post_addr, settings.media_addr):
        await wait_until_serving(address)
    async with (
        grpc.aio.insecure_channel(settings.graph_addr) as graph_channel,
        grpc.aio.insecure_channel(settings.post_addr) as post_channel,
        grpc.aio.insecure_channel(settings.media_addr) as media_channel,
        httpx.AsyncClient(timeout=30) as store,
    ):
        graph = graph_pb2_grpc.GraphServiceStub(graph_channel)
        posts = post_pb2_grpc.PostServiceStub(post_channel)
        media = media_pb2_grpc.MediaServiceStub(media_channel)
        demo = await graph.LookupUser(graph_pb2.LookupUserRequest(username=f"{USERNAME_PREFIX}0"))
        # The people reed0 follows post first, so the demo login's feed is full from the start.
        followees = await graph.ListFolloweeIds(graph_pb2.ListFolloweeIdsRequest(user_id=demo.id))
        chosen = [demo.id, *sorted(followees.followee_ids)][:authors]
        created = 0
        for number, author in enumerate(chosen):
            existing = await posts.ListPosts(post_pb2.ListPostsRequest(parent=f"users/{author}", page_size=1))
            if existing.posts:
                continue
            rng = random.Random(author)
            for n in range(per_author):
                seed = author * 100 + n
                data = crop_of(photos[seed % len(photos)], seed) if photos else photo(seed)
                caption = f"{rng.choice(WORDS)} #{rng.choice(TAGS)} #{rng.choice(TAGS)}"
                await post_with_retries(media, posts, store, author, data, caption, f"demo-{author}-{n}")
                created += 1
            if number % 10 == 9:
                print(f"demo: posts by {number + 1} of {len(chosen)} authors", flush=True)
        return created


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors", type=int, default=60, help="demo users who post (default 60)")
    parser.add_argument("--posts-per-author", type=int, default=5, help="posts each (default 5)")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help=f"folder of real photos (default {PHOTOS})")
    args = parser.parse_args()
    photos = sorted(p for p in args.photos.glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not photos:
        print(f"demo: no photos in {args.photos}; generating pictures instead", flush=True)
    try:
        created = await load(MeshSettings(), args.authors, args.posts_per_author, photos)
    except (grpc.aio.AioRpcError, httpx.HTTPError) as exc:
        # Exiting would make honcho stop every service; the next `make run` resumes the load.
        print(f"demo: loading stopped early ({describe(exc)}); run make run again to add the rest", flush=True)
    else:
        print(f"demo: {created} new posts (0 means they were already there)", flush=True)
    print(f"demo: log in as {USERNAME_PREFIX}0 / {DEMO_PASSWORD}; the README walks you through it", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
