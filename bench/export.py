"""Data export (issue 16): the export of a user with 1,000 posts, 10,000 likes given and 5,000
followers, beside the floor of reading and writing the same bytes without export_svc.

    flock /tmp/glimpse-bench.lock make bench BENCH=export

Runs graph_svc, post_svc, media_svc, engagement_svc, story_svc and export_svc (bench.stack) on a fresh
database.
The user's data is bulk-loaded (SQL and the bucket, not through the services; bench.feed_data): 5,000
followers, 1,000 posts with one photo each, 10,000 likes of the posts of 100 other authors. The
photos are real ones of ../shared/datasets/photos (the three smallest, 107-140 KB, reused in turn:
about 120 MB of originals), stored as each post's upload in the media bucket.

  export   CreateExport as the user, then GetExport until READY: the wall time of the whole build
           (gathering over gRPC, streaming the originals, zipping, the multipart upload), and the
           peak RSS of the export_svc process against its RSS before the build. The zip is then
           downloaded and checked: 1,000 posts, 10,000 likes, 5,000 followers, 1,000 photos.
  floor    in the same run, the least work that moves the same bytes: the same rows read by plain
           SQL (posts, likes, followers with their usernames), every original read from the bucket,
           and an object of the zip's size uploaded in 8 MiB parts (one part in memory at a time),
           one after another as the builder does.
Then every process's peak RSS.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
from minio.datatypes import Part

from bench.feed_data import connect, copy_follows, copy_users, insert_posts, set_follow_counts
from bench.stack import Stack, peak_rss_of, running_stack
from bench.stats import peak_rss_line
from export_svc.settings import ExportSettings
from glimpse.export.v1 import export_pb2, export_pb2_grpc
from media_svc.settings import MediaSettings
from media_svc.storage import admin_client
from mesh.identity import as_caller

POSTS, LIKES, FOLLOWERS = 1_000, 10_000, 5_000
AUTHORS = 100  # whose posts are liked, LIKES // AUTHORS posts each
USER = 50_000_001
FOLLOWER_BASE = 51_000_000
AUTHOR_IDS = list(range(52_000_000, 52_000_000 + AUTHORS))
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "photos"
PHOTO_FILES = ("brick.png", "rocket.jpg", "camera.png")
PART = 8 * 1024 * 1024


def load_exporter(stack: Stack, settings: MediaSettings) -> list[str]:
    """The user's data; the keys of the originals stored."""
    photos = [(PHOTOS / name).read_bytes() for name in PHOTO_FILES]
    kinds = ["image/png" if name.endswith(".png") else "image/jpeg" for name in PHOTO_FILES]
    with connect(stack.database_url) as conn:
        copy_users(conn, [USER], "exporter")
        copy_users(conn, AUTHOR_IDS, "author")
        followers = list(range(FOLLOWER_BASE, FOLLOWER_BASE + FOLLOWERS))
        copy_users(conn, followers, "follower")
        copy_follows(conn, ((f, USER) for f in followers))
        insert_posts(conn, [USER], POSTS, first_seq=1, days=365)
        insert_posts(conn, AUTHOR_IDS, LIKES // AUTHORS, first_seq=1 + POSTS, days=30)
        set_follow_counts(conn, [USER, *followers])
        conn.execute(
            "INSERT INTO engagement.likes (post_id, user_id) SELECT id, %s FROM posts.posts WHERE author_id = ANY(%s)",
            (USER, AUTHOR_IDS),
        )
        uploads = list(conn.execute("SELECT id, object_key FROM media.media WHERE owner_id = %s ORDER BY id", (USER,)))
        # Each post's upload: one of the real photos, its type and size as the record says.
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE media.media SET content_type = %s, size_bytes = %s WHERE id = %s",
                [(kinds[n % 3], len(photos[n % 3]), media_id) for n, (media_id, _) in enumerate(uploads)],
            )
    client = admin_client(settings)

    def put(n: int) -> None:
        data = photos[n % 3]
        client.put_object(settings.bucket, uploads[n][1], io.BytesIO(data), len(data), content_type=kinds[n % 3])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(len(uploads))))
    return [key for _, key in uploads]


async def _export(stack: Stack) -> tuple[float, int, int, str]:
    """(wall seconds, export_svc's RSS before the build, its peak RSS after, the download URL)."""
    pid = stack.running["export_svc"].pid
    before = _rss(pid)
    async with grpc.aio.insecure_channel(stack.addr["export_svc"]) as channel:
        exports = export_pb2_grpc.ExportServiceStub(channel)
        me = as_caller(USER)
        started = time.perf_counter()
        created = await exports.CreateExport(export_pb2.CreateExportRequest(request_id="bench"), metadata=me)
        while True:
            await asyncio.sleep(0.05)
            export = await exports.GetExport(export_pb2.GetExportRequest(export_id=created.id), metadata=me)
            if export.state not in (export_pb2.EXPORT_STATE_PENDING, export_pb2.EXPORT_STATE_RUNNING):
                break
        wall = time.perf_counter() - started
    if export.state != export_pb2.EXPORT_STATE_READY:
        raise RuntimeError(f"the export ended {export_pb2.ExportState.Name(export.state)}: {export.failure_reason}")
    return wall, before, peak_rss_of(pid) or 0, export.download_url


def _rss(pid: int) -> int:
    """The resident set size (VmRSS) of `pid` now, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def zip_contents(url: str) -> tuple[int, dict[str, int]]:
    """Downloads the zip (to a temporary file) and counts what it holds: its size and entries."""
    with tempfile.TemporaryFile() as out:
        with httpx.stream("GET", url, timeout=120) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes(1024 * 1024):
                out.write(chunk)
        size = out.tell()
        archive = zipfile.ZipFile(out)
        counts = {name: len(json.loads(archive.read(name))) for name in ("posts.json", "likes.json", "followers.json")}
        counts["media/"] = sum(1 for name in archive.namelist() if name.startswith("media/"))
    return size, counts


def _floor(stack: Stack, settings: MediaSettings, keys: list[str], zip_size: int) -> dict[str, float]:
    """Seconds for the same rows by SQL, the originals read, and the zip's bytes uploaded in parts."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with connect(stack.database_url) as conn:
        conn.execute(
            "SELECT p.id, p.caption, p.hashtags, p.media_ids, p.created_at, m.content_type FROM posts.posts p "
            "JOIN media.media m ON m.id = p.media_ids[1] WHERE p.author_id = %s ORDER BY p.id DESC",
            (USER,),
        ).fetchall()
        conn.execute(
            "SELECT post_id, created_at FROM engagement.likes WHERE user_id = %s ORDER BY created_at DESC", (USER,)
        ).fetchall()
        conn.execute(
            "SELECT u.id, u.username, u.display_name, f.created_at FROM graph.follows f "
            "JOIN graph.users u ON u.id = f.follower_id WHERE f.followee_id = %s ORDER BY f.created_at DESC",
            (USER,),
        ).fetchall()
    timings["SQL: posts, likes, followers"] = time.perf_counter() - started
    client = admin_client(settings)
    started = time.perf_counter()
    for key in keys:
        response = client.get_object(settings.bucket, key)
        try:
            while response.read(1024 * 1024):
                pass
        finally:
            response.close()
            response.release_conn()
    timings["S3: read every original"] = time.perf_counter() - started
    export_bucket = ExportSettings(namespace=stack.namespace).bucket
    key = "exports/floor.zip"
    started = time.perf_counter()
    upload_id = client._create_multipart_upload(export_bucket, key, {"Content-Type": "application/zip"})
    parts: list[Part] = []
    sent = 0
    part = bytes(PART)
    while sent < zip_size:
        data = part[: min(PART, zip_size - sent)]
        parts.append(
            Part(len(parts) + 1, client._upload_part(export_bucket, key, data, None, upload_id, len(parts) + 1))
        )
        sent += len(data)
    client._complete_multipart_upload(export_bucket, key, upload_id, parts)
    timings["S3: upload the zip's bytes in 8 MiB parts"] = time.perf_counter() - started
    client.remove_object(export_bucket, key)
    return timings


def main() -> None:
    processes = ["graph_svc", "post_svc", "media_svc", "engagement_svc", "story_svc", "export_svc"]
    with running_stack(processes) as stack:
        settings = MediaSettings(namespace=stack.namespace)
        started = time.perf_counter()
        keys = load_exporter(stack, settings)
        print(
            f"  loaded: {POSTS:,} posts with a real photo each, {LIKES:,} likes given, {FOLLOWERS:,} followers "
            f"in {time.perf_counter() - started:.1f} s"
        )
        wall, before, peak, url = asyncio.run(_export(stack))
        peaks = peak_rss_line()
        size, counts = zip_contents(url)
        floor = _floor(stack, settings, keys, size)
        total = sum(floor.values())
        print(f"  export   {wall:8.2f} s   zip {size / 2**20:,.1f} MiB   holding {counts}")
        print(
            f"           export_svc RSS {before / 2**20:.0f} MiB before the build, peak {peak / 2**20:.0f} MiB "
            f"(+{(peak - before) / 2**20:.0f} MiB for a {size / 2**20:,.0f} MiB zip)"
        )
        for name, seconds in floor.items():
            print(f"  floor    {seconds:8.2f} s   {name}")
        print(f"  floor    {total:8.2f} s   in all: the export takes {wall / total:.1f}x the floor")
        print(peaks)
        if counts != {"posts.json": POSTS, "likes.json": LIKES, "followers.json": FOLLOWERS, "media/": POSTS}:
            raise RuntimeError(f"the zip does not hold the user's data: {counts}")
