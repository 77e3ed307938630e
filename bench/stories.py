"""Stories (issue 17): the tray beside the home feed read, and view recording beside an empty call.

    flock /tmp/glimpse-bench.lock make bench BENCH=stories

Runs graph_svc, post_svc, media_svc, engagement_svc, feed_svc and story_svc (bench.stack) on a fresh
database. Bulk-loaded (SQL and Redis, not through the services): 16 readers who each follow the same
500 accounts; those accounts have 2 posts each (their outboxes and the readers' live inboxes built
as the fan-out would), and 100 of them have 1 to 3 active stories (a few expired ones too, which the
tray must skip), of which each reader has viewed about half. 10,000 more users exist to view.

From this process, one loopback channel per service, 16 callers at once:
  floor    grpc.health.v1.Health/Check on story_svc's channel
  tray     GetStoryTray, each caller one reader (ListFolloweeIds + filters + one SQL statement)
  feed     GetHomeFeed (20 items) for the same readers, in the same run: the read it sits beside
  views    ViewStory of ONE story by 10,000 distinct users (625 per caller)
After the views the story's view_count (ListStoryViewers as its author) and a recount of its rows
must both be exactly 10,000; the benchmark stops with an error otherwise. Then every process's peak
RSS.

Floors (same run): tray p99 <= feed p99 (the tray is read with the feed, it must not be the slower);
views >= 25% of the empty call's rate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable, Sequence

import grpc
import psycopg
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.create_post import Call, at_once
from bench.feed_data import (
    build_inboxes,
    build_outboxes,
    connect,
    copy_follows,
    copy_users,
    insert_posts,
    make_timelines,
    merged_inbox,
    newest_posts,
    set_follow_counts,
)
from bench.stack import Stack, running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from glimpse.story.v1 import story_pb2, story_pb2_grpc
from mesh.identity import as_caller

CALLERS = 16
READERS = list(range(1, CALLERS + 1))
FOLLOWEES = list(range(1001, 1501))  # 500 accounts every reader follows
WITH_STORIES = FOLLOWEES[:100]
VIEWERS = list(range(100_001, 110_001))  # 10,000 distinct users who view one story
TRAY_CALLS, FEED_CALLS = 150, 150  # per caller
FEED_PAGE = 20
VIEW_FLOOR, TRAY_VS_FEED = 0.25, 1.0
FIRST_STORY_ID = 10**15


def _load(stack: Stack) -> int:
    """Users, follows, posts, stories and views; returns the id of the story the views go to."""
    rng = random.Random(17)
    with connect(stack.database_url) as conn:
        copy_users(conn, READERS, "reader")
        copy_users(conn, FOLLOWEES, "followee")
        copy_users(conn, VIEWERS, "viewer")
        copy_follows(conn, ((r, f) for r in READERS for f in FOLLOWEES))
        set_follow_counts(conn, READERS + FOLLOWEES)
        insert_posts(conn, FOLLOWEES, 2, first_seq=1, days=2)
        newest = newest_posts(conn, FOLLOWEES, 200)
        now = dt.datetime.now(dt.UTC)
        stories: list[tuple[int, int, int, dt.datetime, dt.datetime]] = []
        for author in WITH_STORIES:
            for _ in range(rng.randint(1, 3)):
                created = now - dt.timedelta(minutes=rng.randint(1, 23 * 60))
                stories.append((FIRST_STORY_ID + len(stories), author, 1, created, created + dt.timedelta(hours=24)))
        for author in FOLLOWEES[100:150]:  # expired and not swept yet: the tray must leave them out
            created = now - dt.timedelta(hours=30)
            stories.append((FIRST_STORY_ID + len(stories), author, 1, created, created + dt.timedelta(hours=24)))
        _copy(conn, "COPY stories.stories (id, author_id, media_id, created_at, expire_at) FROM STDIN", stories)
        active = [s[0] for s in stories if s[4] > now]
        views = [(story, reader) for story in active for reader in READERS if rng.random() < 0.5]
        _copy(conn, "COPY stories.story_views (story_id, viewer_id) FROM STDIN", views)
        conn.execute("ANALYZE stories.stories; ANALYZE stories.story_views")
    asyncio.run(_timelines(stack, newest))
    return active[0]


async def _timelines(stack: Stack, newest: dict[int, list[int]]) -> None:
    """The followees' outboxes and the readers' live inboxes, as the fan-out would have written them
    (one event loop: the Redis client belongs to the loop it was made in)."""
    timelines = make_timelines(stack.namespace, stack.env.get("GLIMPSE_REDIS_URL"))
    await build_outboxes(timelines, newest)
    await build_inboxes(timelines, {r: merged_inbox(FOLLOWEES, newest, 800) for r in READERS})


def _copy(conn: psycopg.Connection, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _repeat(call: Call, n: int) -> tuple[Call, int]:
    return call, n


async def _measure(stack: Stack, story_id: int, author_id: int, preloaded: int) -> None:
    """Times the phases and checks the view count: `preloaded` views of the story came with the load."""
    async with (
        grpc.aio.insecure_channel(stack.addr["story_svc"]) as story_channel,
        grpc.aio.insecure_channel(stack.addr["feed_svc"]) as feed_channel,
    ):
        stories = story_pb2_grpc.StoryServiceStub(story_channel)
        feed = feed_pb2_grpc.FeedServiceStub(feed_channel)
        tray_request = story_pb2.GetStoryTrayRequest()
        feed_request = feed_pb2.GetHomeFeedRequest(page_size=FEED_PAGE)
        entries = 0
        for reader in READERS:  # warm: caches, connections, plans
            for _ in range(3):
                entries = len((await stories.GetStoryTray(tray_request, metadata=as_caller(reader))).entries)
                await feed.GetHomeFeed(feed_request, metadata=as_caller(reader))
        if entries != len(WITH_STORIES):
            raise RuntimeError(f"a reader's tray has {entries} entries, not {len(WITH_STORIES)}")

        floor_one = await empty_call_floor(story_channel, 500)
        floor = await at_once(
            "floor: empty call (Health/Check), 16 callers",
            [_repeat(_health(story_channel), 400) for _ in READERS],
        )
        tray = await at_once(
            "GetStoryTray (500 followees, 100 with stories)",
            [_repeat(_bound(stories.GetStoryTray, tray_request, r), TRAY_CALLS) for r in READERS],
        )
        home = await at_once(
            f"GetHomeFeed ({FEED_PAGE} items), same readers",
            [_repeat(_bound(feed.GetHomeFeed, feed_request, r), FEED_CALLS) for r in READERS],
        )
        lanes = [VIEWERS[i::CALLERS] for i in range(CALLERS)]
        view_request = story_pb2.ViewStoryRequest(story_id=story_id)
        views = await at_once(
            "ViewStory: one story, 10,000 distinct viewers",
            [_each(stories.ViewStory, view_request, lane) for lane in lanes],
        )
        listed = await stories.ListStoryViewers(
            story_pb2.ListStoryViewersRequest(parent=f"stories/{story_id}", page_size=1),
            metadata=as_caller(author_id),
        )
    with connect(stack.database_url) as conn:
        rows = conn.execute("SELECT count(*) FROM stories.story_views WHERE story_id = %s", (story_id,)).fetchone()
    recount = rows[0] if rows else 0
    print(f"  16 callers over one channel per service; floor alone: {floor_one.line().strip()}")
    for sample in (floor, tray, home, views):
        print(sample.line())
    print(f"  view_count after the views: {listed.view_count} (rows: {recount})")
    expected = len(VIEWERS) + preloaded
    if listed.view_count != expected or recount != expected:
        raise RuntimeError(f"view_count {listed.view_count}, rows {recount}: expected exactly {expected}")
    _verdict(floor, tray, home, views)
    print(peak_rss_line())


def _health(channel: grpc.aio.Channel) -> Call:
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()
    return lambda: health.Check(request)


def _bound(method: Callable[..., Awaitable[object]], request: Message, user: int) -> Call:
    metadata = as_caller(user)
    return lambda: method(request, metadata=metadata)


def _each(method: Callable[..., Awaitable[object]], request: Message, users: list[int]) -> tuple[Call, int]:
    pending = iter(users)
    return (lambda: method(request, metadata=as_caller(next(pending)))), len(users)


def _verdict(floor: Sample, tray: Sample, home: Sample, views: Sample) -> None:
    tray_ok = tray.percentile(99) <= home.percentile(99) * TRAY_VS_FEED
    views_ok = views.rate >= floor.rate * VIEW_FLOOR
    print(
        f"  tray p99 {tray.percentile(99) * 1000:.2f} ms vs feed p99 {home.percentile(99) * 1000:.2f} ms: "
        f"{'OK' if tray_ok else 'SLOWER THAN THE FEED'}; views {views.rate:,.0f}/s = "
        f"{100 * views.rate / floor.rate:.0f}% of the empty call (floor {100 * VIEW_FLOOR:.0f}%): "
        f"{'OK' if views_ok else 'BELOW THE FLOOR'}"
    )


def main() -> None:
    processes = ["graph_svc", "post_svc", "media_svc", "engagement_svc", "feed_svc", "story_svc"]
    with running_stack(processes) as stack:
        story_id = _load(stack)
        with connect(stack.database_url) as conn:
            row = conn.execute(
                "SELECT author_id, (SELECT count(*) FROM stories.story_views WHERE story_id = %(s)s) "
                "FROM stories.stories WHERE id = %(s)s",
                {"s": story_id},
            ).fetchone()
        assert row is not None
        author_id, preloaded = row
        asyncio.run(_measure(stack, story_id, author_id, preloaded))
