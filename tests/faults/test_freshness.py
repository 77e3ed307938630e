"""Freshness after a crash (issue 10): the real services run as processes under a bounded load while
one of them is killed with SIGKILL and started again (or the NATS server is restarted), and we
measure how soon afterwards what users did is what users see.

Targets, counted from the moment the victim serves again (SERVING on health; NATS listening) for
whatever was acknowledged before that and not yet visible when the fault struck, and from the
acknowledgement otherwise:
- every acknowledged post is in every follower's home feed within 5 s;
- every photo of a post is READY within 10 s;
- a deleted post is served by no feed more than 5 s after its deletion was acknowledged (counted
  from the acknowledgement itself, fault or not);
- an edited caption is in every follower's feed, and a follow shows the followee's posts (a
  celebrity's too, which the reader pulls), within 5 s.
The worst figures are printed (also without `-s`) and asserted against the targets plus READ_SLACK
(0.5 s), the resolution of the measurement: every reader's feed is read every ~0.3 s, and a
sighting is dated at the end of the read. NATS is the test's own server (nats_server.py). Before
this round the same faults took 30 s (fan-out ack wait), 120 s (rendition ack wait), 60 s
(hydration cache: a deletion missed during a NATS reconnect, every caption edit) and 30 s (a
celebrity's new follower).

The load: 3 authors and a celebrity (above the lowered celebrity threshold, so followers pull its
outbox) each post a real photo about once a second; 4 followers follow all of them and 3 fans the
celebrity only; posts already seen by every follower (so cached by feed_svc) are deleted or edited
every second; three newcomers, who read their feed first (so feed_svc caches "no celebrities" for
them), follow the celebrity and one author each: just before the fault, while the victim is down,
and right after it is back. Caches keep their production lifetimes (60 s posts, 30 s celebrity
followees): only events can make them fresh in time.

The victim is killed while it holds messages it has not acknowledged when it has any (the fan-out
and the rendition worker are watched for that), so their redelivery is part of what is measured.

Not covered here: a fan-out write lost by a Redis Cluster failover (issue 10's last item), where
three cases differ.
- The master's process dies (kill -9, OOM): nothing is lost. Redis hands the replication stream to
  the kernel in the same event-loop flush as the reply (microseconds apart), and the kernel still
  delivers a killed process's sent bytes; tests/cluster/test_fanout_failover.py kills a master
  mid-fan-out and finds every post in every inbox.
- The master's machine vanishes: the writes of the last moment (sub-millisecond of replication
  lag; at most the pipelines in flight, concurrency x follower_batch inbox writes per fan-out
  process) may be lost, each a post missing from one follower's inbox.
- A partition leaves the master reachable by the fan-out but cut from its replica and the other
  masters: it accepts writes until cluster-node-timeout (15 s by default) while its replica is
  promoted, and discards them when it rejoins. This is the real window.
Nothing repairs a lost inbox entry (an active reader's inbox never expires; the outbox, the post
and other inboxes are intact). Configuration shrinks the partition window: with min-replicas-to-write
1 and min-replicas-max-lag N a master refuses writes N seconds after its replica stops answering,
so the fan-out's handler fails and the event is redelivered, to the new master. Closing both cases
takes the fan-out confirming its writes (WAIT 1 <ms> on the connection that wrote, redelivering the
event when no replica acknowledged), one round trip per pipeline, in the timelines package.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import math
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from PIL import Image

from bench.stack import Stack, running_stack
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.bus import Bus
from mesh.events import POST_CREATED
from mesh.identity import as_caller
from tests.faults.nats_server import NatsServer

PROCESSES = ["graph_svc", "post_svc", "media_svc", "media_svc.worker", "fanout_svc", "engagement_svc", "feed_svc"]
# Which durable consumer each victim pulls from (stream, durable), to kill it while it holds messages.
HELD = {"fanout_svc": ("POSTS", "fanout_posts_created"), "media_svc.worker": ("POSTS", "media_renditions")}

THRESHOLD = 5
AUTHORS = 3  # followed by the followers and one newcomer each: 5 followers, pushed
FOLLOWERS = 4
FANS = 3  # the celebrity's extra followers: 7 + newcomers, above THRESHOLD: pulled
NEWCOMERS = 3

FEED_TARGET = 5.0
READY_TARGET = 10.0
READ_SLACK = 0.5
POST_PAUSE = 0.8  # each author, between posts
MUTATE_EVERY = 1.0
FAULT_AT = 4.0  # seconds of load before the fault
NATS_DOWN = 1.0  # between the server's exit and its start
AFTER = 4.0  # seconds of load after the victim is back
SETTLE = 20.0  # at most this long after the load for everything to be seen
ROUND_PAUSE = 0.15

# The test's clients redial a restarted server at once (gRPC's default backoff starts at 1 s).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
]
RPC_TIMEOUT = 5.0
PASSWORD = "a long enough passphrase"


@pytest.fixture(scope="module")
async def stack(nats_server: NatsServer) -> AsyncIterator[Stack]:
    """Every backend process on a fresh database and namespace, on the test's own NATS server."""
    processes = running_stack(
        PROCESSES,
        nats_url=nats_server.url,
        stream_replicas="1",
        celebrity_threshold=str(THRESHOLD),
        argon2_time_cost="1",
        argon2_memory_kib="8192",
        argon2_parallelism="1",
    )
    # running_stack blocks (and runs event loops of its own): enter and leave it off this loop.
    started = await asyncio.to_thread(processes.__enter__)
    try:
        yield started
    finally:
        if not nats_server.running:  # its streams are deleted on the way out
            await asyncio.to_thread(nats_server.start)
        await asyncio.to_thread(processes.__exit__, None, None, None)


@dataclass
class Clients:
    graph: graph_pb2_grpc.GraphServiceStub
    post: post_pb2_grpc.PostServiceStub
    media: media_pb2_grpc.MediaServiceStub
    feed: feed_pb2_grpc.FeedServiceStub
    bus: Bus
    store: httpx.AsyncClient


@pytest.fixture(scope="module")
async def clients(stack: Stack, nats_server: NatsServer) -> AsyncIterator[Clients]:
    channels = {
        name: grpc.aio.insecure_channel(stack.addr[name], options=CHANNEL_OPTIONS)
        for name in ("graph_svc", "post_svc", "media_svc", "feed_svc")
    }
    bus = await Bus.connect(nats_server.url, stack.namespace)
    try:
        async with httpx.AsyncClient(timeout=30) as store:
            yield Clients(
                graph=graph_pb2_grpc.GraphServiceStub(channels["graph_svc"]),
                post=post_pb2_grpc.PostServiceStub(channels["post_svc"]),
                media=media_pb2_grpc.MediaServiceStub(channels["media_svc"]),
                feed=feed_pb2_grpc.FeedServiceStub(channels["feed_svc"]),
                bus=bus,
                store=store,
            )
    finally:
        await bus.close()
        for channel in channels.values():
            await channel.close()


def photo(seed: int) -> bytes:
    """A 1200x900 JPEG (~100 KB) that takes the worker a noticeable moment to render, so a kill can
    find one in hand."""
    base = Image.radial_gradient("L").resize((1200, 900))
    image = Image.merge("RGB", (base, base.rotate(seed * 37 % 360), Image.effect_noise((1200, 900), 24)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


@dataclass
class Post:
    author: int
    media_ids: list[int]
    acknowledged: float


@dataclass
class Follow:
    followees: list[int]
    acknowledged: float


@dataclass
class Fault:
    victim: str
    killed: float = math.inf
    back: float = math.inf  # serving again
    held_at_kill: int = 0  # messages the victim had not acknowledged when killed

    def lag(self, acknowledged: float, seen: float) -> float:
        """How late a sighting is against the targets: from the acknowledgement if it was seen before
        the fault struck, else from the later of the acknowledgement and the victim's return."""
        if seen < self.killed:
            return seen - acknowledged
        return max(0.0, seen - max(acknowledged, self.back))


@dataclass
class Run:
    """What was acknowledged and what the readers saw, in time.monotonic() seconds."""

    followers: dict[int, set[int]]  # reader -> authors followed from the start
    posts: dict[int, Post] = field(default_factory=dict)
    deleted: dict[int, float] = field(default_factory=dict)  # post -> deletion acknowledged
    edited: dict[int, tuple[str, float]] = field(default_factory=dict)  # post -> (caption, acknowledged)
    follows: dict[int, Follow] = field(default_factory=dict)  # newcomer -> their follows
    seen: dict[int, dict[int, float]] = field(default_factory=dict)  # post -> reader -> first seen
    caption_seen: dict[int, dict[int, float]] = field(default_factory=dict)  # edited post -> reader -> new caption
    served_deleted: dict[int, float] = field(default_factory=dict)  # deleted post -> last served after
    ready: dict[int, float] = field(default_factory=dict)  # media -> first READY
    failed_media: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # failed writes (each is retried or simply not counted)
    unavailable_reads: int = 0

    def readers_of(self, author: int) -> set[int]:
        return {reader for reader, authors in self.followers.items() if author in authors}

    def followed_posts(self) -> list[tuple[int, int, float]]:
        """(newcomer, post, since) for each live post of a newcomer's followees: due in the newcomer's
        feed from the follow on if it is older, else from its own acknowledgement."""
        return [
            (newcomer, p, max(post.acknowledged, follow.acknowledged))
            for newcomer, follow in self.follows.items()
            for p, post in self.live_posts().items()
            if post.author in follow.followees
        ]

    def live_posts(self) -> dict[int, Post]:
        return {p: post for p, post in self.posts.items() if p not in self.deleted}

    def settled(self, served_deleted_last_round: bool) -> bool:
        live = self.live_posts()
        return (
            not served_deleted_last_round
            and all(self.readers_of(post.author) <= set(self.seen.get(p, {})) for p, post in live.items())
            and all(
                self.readers_of(live[p].author) <= set(self.caption_seen.get(p, {})) for p in self.edited if p in live
            )
            and all(n in self.seen.get(p, {}) for n, p, _ in self.followed_posts())
            and all(m in self.ready for post in live.values() for m in post.media_ids)
        )


@pytest.mark.parametrize("victim", ["fanout_svc", "media_svc.worker", "feed_svc", "nats"])
async def test_after_a_crash_posts_photos_deletions_edits_and_follows_are_fresh_within_seconds(
    victim: str, stack: Stack, clients: Clients, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(victim)
    tag = uuid.uuid4().hex[:6]
    names = (f"f{tag}_{n}" for n in itertools.count())
    authors = [await _register(clients, next(names)) for _ in range(AUTHORS)]
    celebrity = await _register(clients, next(names))
    followers = [await _register(clients, next(names)) for _ in range(FOLLOWERS)]
    fans = [await _register(clients, next(names)) for _ in range(FANS)]
    newcomers = [await _register(clients, next(names)) for _ in range(NEWCOMERS)]
    for reader in followers:
        for author in [*authors, celebrity]:
            await _follow(clients, reader, author)
    for fan in fans:
        await _follow(clients, fan, celebrity)
    run = Run(followers={r: {*authors, celebrity} for r in followers} | {f: {celebrity} for f in fans})
    readers = [*followers, *fans, *newcomers]
    for reader in readers:  # live inboxes, and "no celebrities" cached for the newcomers
        assert await _feed(clients, reader) == []

    fault = Fault(victim)
    stop = asyncio.Event()  # no new writes
    load_over = asyncio.Event()  # every write returned
    seeds = itertools.count(int(tag, 16) % 1000)

    async def keep_posting(author: int) -> None:
        while not stop.is_set():
            try:
                media_id = await _upload(clients, author, photo(next(seeds)))
                created = await clients.post.CreatePost(
                    post_pb2.CreatePostRequest(caption=f"post by {author}", media_ids=[media_id]),
                    metadata=as_caller(author),
                    timeout=RPC_TIMEOUT,
                )
            except (grpc.aio.AioRpcError, httpx.HTTPError) as exc:
                run.errors.append(f"post: {_describe(exc)}")
                await asyncio.sleep(0.2)
                continue
            run.posts[created.id] = Post(author, [media_id], time.monotonic())
            await asyncio.sleep(POST_PAUSE)

    async def mutate_once() -> None:
        """Deletes or edits (in turn) a post every follower has seen, so feed_svc has it cached."""
        cached = [
            p
            for p, post in run.live_posts().items()
            if p not in run.edited and run.readers_of(post.author) <= set(run.seen.get(p, {}))
        ]
        if not cached:
            return
        post_id = rng.choice(cached)
        author = run.posts[post_id].author
        try:
            if len(run.deleted) <= len(run.edited):
                await clients.post.DeletePost(
                    post_pb2.DeletePostRequest(post_id=post_id), metadata=as_caller(author), timeout=RPC_TIMEOUT
                )
                run.deleted[post_id] = time.monotonic()
            else:
                caption = f"edited {uuid.uuid4().hex[:8]}"
                await clients.post.UpdatePost(
                    post_pb2.UpdatePostRequest(
                        post=post_pb2.Post(id=post_id, caption=caption), update_mask=FieldMask(paths=["caption"])
                    ),
                    metadata=as_caller(author),
                    timeout=RPC_TIMEOUT,
                )
                run.edited[post_id] = (caption, time.monotonic())
        except grpc.aio.AioRpcError as exc:
            run.errors.append(f"delete/edit: {_describe(exc)}")

    async def keep_mutating() -> None:
        while not stop.is_set():
            await mutate_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MUTATE_EVERY)

    async def newcomer_follows(n: int) -> None:
        newcomer, followees = newcomers[n], [celebrity, authors[n]]
        for followee in followees:
            await _follow(clients, newcomer, followee)
        run.follows[newcomer] = Follow(followees, time.monotonic())

    async def strike() -> None:
        await asyncio.sleep(FAULT_AT)
        await newcomer_follows(0)
        if victim == "nats":
            await asyncio.to_thread(nats_server.stop)
            fault.killed = time.monotonic()
            during = asyncio.gather(mutate_once(), newcomer_follows(1))
            await asyncio.sleep(NATS_DOWN)
            await asyncio.to_thread(nats_server.start)
        else:
            fault.held_at_kill = await _held_soon(clients.bus, HELD.get(victim))
            stack.kill(victim)
            fault.killed = time.monotonic()
            during = asyncio.gather(mutate_once(), newcomer_follows(1))
            await asyncio.to_thread(stack.start, victim)
        fault.back = time.monotonic()
        await during
        await newcomer_follows(2)

    async def observe() -> None:
        """Reads every reader's feed and the photos' status until the load is over and all is seen."""
        deadline = math.inf
        while True:
            served_deleted = await _read_feeds(clients, run, readers)
            await _read_media(clients, run)
            if load_over.is_set():
                deadline = min(deadline, time.monotonic() + SETTLE)
                if run.settled(served_deleted) or time.monotonic() > deadline:
                    return
            await asyncio.sleep(ROUND_PAUSE)

    load = [asyncio.create_task(keep_posting(a)) for a in [*authors, celebrity]]
    load.append(asyncio.create_task(keep_mutating()))
    watching = asyncio.create_task(observe())
    try:
        await strike()
        await asyncio.sleep(AFTER)
        stop.set()
        await asyncio.gather(*load)
        load_over.set()
        await watching
    finally:
        stop.set()
        for task in [*load, watching]:
            task.cancel()
        await asyncio.gather(*load, watching, return_exceptions=True)
        # Whole again for the next scenario, whatever failed here.
        if not nats_server.running:
            await asyncio.to_thread(nats_server.start)
        if victim != "nats" and victim not in stack.running:
            await asyncio.to_thread(stack.start, victim)

    figures = _figures(run, fault)
    redelivered = await _redeliveries(clients.bus, HELD.get(victim))
    during = sum(1 for post in run.posts.values() if fault.killed <= post.acknowledged <= fault.back)
    struck = (
        f"server stopped, listening again {fault.back - fault.killed:.1f}s later"
        if victim == "nats"
        else f"SIGKILL holding {fault.held_at_kill} unacknowledged messages, serving again "
        f"{fault.back - fault.killed:.1f}s later ({redelivered} redeliveries)"
    )
    with capsys.disabled():
        print(
            f"\n[{victim}] {struck}; {len(run.posts)} posts ({during} while down), {len(run.deleted)} deleted, "
            f"{len(run.edited)} edited, {len(run.follows)} follows, {run.unavailable_reads} feed reads refused; "
            f"worst: post in every feed {figures['post']:.1f}s, deleted post served {figures['deleted']:.1f}s "
            f"after its deletion, edit {figures['edit']:.1f}s, follow {figures['follow']:.1f}s (targets "
            f"{FEED_TARGET:g}s), photo READY {figures['ready']:.1f}s (target {READY_TARGET:g}s); failed writes: "
            f"{run.errors[:3]}"
        )
    missing = {
        p: sorted(run.readers_of(post.author) - set(run.seen.get(p, {})))
        for p, post in run.live_posts().items()
        if run.readers_of(post.author) - set(run.seen.get(p, {}))
    }
    assert not missing, f"acknowledged posts missing from followers' feeds: {missing}"
    assert not run.failed_media, run.failed_media
    unfollowed = [(n, p) for n, p, _ in run.followed_posts() if n not in run.seen.get(p, {})]
    assert not unfollowed, f"posts missing from newcomers' feeds after their follow: {unfollowed}"
    assert run.deleted and run.edited and len(run.follows) == NEWCOMERS
    assert figures["post"] <= FEED_TARGET + READ_SLACK, figures
    assert figures["ready"] <= READY_TARGET + READ_SLACK, figures
    assert figures["deleted"] <= FEED_TARGET + READ_SLACK, figures
    assert figures["edit"] <= FEED_TARGET + READ_SLACK, figures
    assert figures["follow"] <= FEED_TARGET + READ_SLACK, figures


def _figures(run: Run, fault: Fault) -> dict[str, float]:
    """The worst lag of each kind, in seconds (inf for something never seen)."""
    live = run.live_posts()

    def everyone(seen: dict[int, float], readers: set[int]) -> float:
        return max((seen.get(r, math.inf) for r in readers), default=0.0)

    posts = [
        fault.lag(post.acknowledged, everyone(run.seen.get(p, {}), run.readers_of(post.author)))
        for p, post in live.items()
    ]
    ready = [fault.lag(post.acknowledged, run.ready.get(m, math.inf)) for post in live.values() for m in post.media_ids]
    edits = [
        fault.lag(acknowledged, everyone(run.caption_seen.get(p, {}), run.readers_of(live[p].author)))
        for p, (_, acknowledged) in run.edited.items()
        if p in live
    ]
    follows = [fault.lag(since, run.seen.get(p, {}).get(n, math.inf)) for n, p, since in run.followed_posts()]
    deleted = [
        run.served_deleted[p] - acknowledged for p, acknowledged in run.deleted.items() if p in run.served_deleted
    ]
    return {
        "post": max(posts, default=0.0),
        "ready": max(ready, default=0.0),
        "deleted": max(deleted, default=0.0),
        "edit": max(edits, default=0.0),
        "follow": max(follows, default=0.0),
    }


async def _read_feeds(clients: Clients, run: Run, readers: list[int]) -> bool:
    """One read of every reader's feed, recorded in `run`; whether any served a deleted post."""
    served_deleted = False

    async def read(reader: int) -> None:
        nonlocal served_deleted
        asked = time.monotonic()
        try:
            items = await _feed_items(clients, reader)
        except grpc.aio.AioRpcError:
            run.unavailable_reads += 1  # feed_svc is down: nothing is served, fresh or stale
            return
        now = time.monotonic()
        for item in items:
            run.seen.setdefault(item.id, {}).setdefault(reader, now)
            deleted = run.deleted.get(item.id)
            if deleted is not None and deleted < asked:
                run.served_deleted[item.id] = now
                served_deleted = True
            edit = run.edited.get(item.id)
            if edit is not None and item.caption == edit[0]:
                run.caption_seen.setdefault(item.id, {}).setdefault(reader, now)

    await asyncio.gather(*(read(r) for r in readers))
    return served_deleted


async def _read_media(clients: Clients, run: Run) -> None:
    waiting = [m for post in run.live_posts().values() for m in post.media_ids if m not in run.ready]
    if not waiting:
        return
    try:
        response = await clients.media.BatchGetMedia(
            media_pb2.BatchGetMediaRequest(media_ids=waiting), timeout=RPC_TIMEOUT
        )
    except grpc.aio.AioRpcError as exc:
        run.errors.append(f"media: {_describe(exc)}")
        return
    now = time.monotonic()
    for media in response.media:
        if media.status == media_pb2.MEDIA_STATUS_READY:
            run.ready.setdefault(media.id, now)
        elif media.status == media_pb2.MEDIA_STATUS_FAILED:
            run.failed_media[media.id] = media.failure_reason


async def _held_soon(bus: Bus, consumer: tuple[str, str] | None, within: float = 3.0) -> int:
    """Waits (up to `within` seconds) until the durable `consumer` has messages delivered and not yet
    acknowledged; returns how many (0 if it never had any in that time, or there is no consumer)."""
    if consumer is None:
        return 0
    stream, durable = consumer
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        info = await bus.js.consumer_info(bus.stream(stream), f"{bus.namespace}_{durable}")
        if info.num_ack_pending:
            return info.num_ack_pending
        await asyncio.sleep(0.002)
    return 0


async def _redeliveries(bus: Bus, consumer: tuple[str, str] | None) -> int:
    """Deliveries of the durable `consumer` beyond one per posts.created event stored."""
    if consumer is None:
        return 0
    stream, durable = consumer
    subject = bus.subject(POST_CREATED.subject)
    stored = (await bus.js.stream_info(bus.stream(stream), subjects_filter=subject)).state.subjects or {}
    info = await bus.js.consumer_info(bus.stream(stream), f"{bus.namespace}_{durable}")
    return info.delivered.consumer_seq - stored.get(subject, 0)


async def _register(clients: Clients, name: str) -> int:
    user = await clients.graph.RegisterUser(
        graph_pb2.RegisterUserRequest(username=name, email=f"{name}@example.com", password=PASSWORD),
        timeout=RPC_TIMEOUT,
    )
    return user.id


async def _follow(clients: Clients, follower: int, followee: int) -> None:
    await clients.graph.FollowUser(
        graph_pb2.FollowUserRequest(target_user_id=followee), metadata=as_caller(follower), timeout=RPC_TIMEOUT
    )


async def _upload(clients: Clients, owner: int, data: bytes) -> int:
    """A photo sent as a client sends it: an upload grant, then a form POST to the object store."""
    grant = await clients.media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=len(data)),
        metadata=as_caller(owner),
        timeout=RPC_TIMEOUT,
    )
    sent = await clients.store.post(grant.url, data=dict(grant.form_fields), files={"file": ("p", data, "image/jpeg")})
    sent.raise_for_status()
    return grant.media_id


async def _feed_items(clients: Clients, reader: int) -> list[feed_pb2.FeedItem]:
    items: list[feed_pb2.FeedItem] = []
    token = ""
    while True:
        page = await clients.feed.GetHomeFeed(
            feed_pb2.GetHomeFeedRequest(page_size=100, page_token=token),
            metadata=as_caller(reader),
            timeout=RPC_TIMEOUT,
        )
        items += page.items
        token = page.next_page_token
        if not token:
            return items


async def _feed(clients: Clients, reader: int) -> list[int]:
    return [item.id for item in await _feed_items(clients, reader)]


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
