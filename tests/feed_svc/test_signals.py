"""feed_svc.signals and feed_svc.consumers on the real Redis: explore's decayed weights, the interaction
threshold, redelivery, removal, rebasing, readers' affinity and frozen rankings."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from engagement_cache import EngagementCache
from feed_svc.consumers import SignalHandlers
from feed_svc.signals import AFFINITY_HALF_LIFE_MS, REBASE_AFTER_MS, TRENDING_WINDOW_MS, SignalStore
from glimpse.events.v1 import events_pb2
from mesh.ids import lowest_id_at
from mesh.redis_client import connect_redis
from tests.conftest import ENV

HOUR = 3_600_000
T0 = 1_790_000_000_000
_events = itertools.count(1)


@pytest.fixture
async def store() -> AsyncIterator[SignalStore]:
    redis = connect_redis(ENV.redis_url)
    namespace = f"signals-{uuid.uuid4().hex[:12]}"
    yield SignalStore(redis, namespace, min_interactions=3)
    async for key in redis.scan_iter(match=f"{namespace}:*"):
        await redis.delete(key)
    await redis.aclose()


def post_at(ms: int, n: int = 0) -> int:
    """A post id minted at `ms` (Unix ms)."""
    return lowest_id_at(ms) + n


def liked(post: int, author: int, user: int, at: int, *, event_id: int | None = None) -> events_pb2.PostLiked:
    event = events_pb2.PostLiked(event_id=event_id or next(_events), post_id=post, post_author_id=author, user_id=user)
    event.occur_time.FromMilliseconds(at)
    return event


def unliked(post: int, author: int, user: int, at: int) -> events_pb2.PostUnliked:
    event = events_pb2.PostUnliked(event_id=next(_events), post_id=post, post_author_id=author, user_id=user)
    event.occur_time.FromMilliseconds(at)
    return event


async def like_times(handlers: SignalHandlers, post: int, author: int, at: int, users: range) -> None:
    for user in users:
        await handlers.on_engagement(liked(post, author, user, at))


async def test_a_post_trends_once_it_has_enough_interactions_by_others(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    post = post_at(T0)
    await handlers.on_engagement(liked(post, 7, 7, T0 + 1))  # the author's own like counts for nothing
    await like_times(handlers, post, 7, T0 + 2, range(100, 102))
    assert await store.trending(10) == []
    await like_times(handlers, post, 7, T0 + 3, range(102, 103))
    [top] = await store.trending(10)
    assert (top.post_id, top.author_id) == (post, 7)
    await handlers.on_engagement(unliked(post, 7, 100, T0 + 4))
    assert await store.trending(10) == []


async def test_velocity_beats_a_larger_but_older_burst(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    old, new = post_at(T0 - 10 * HOUR), post_at(T0 - HOUR)
    # 10 likes six hours ago weigh 10 / 2^3 = 1.25 now; 4 likes now weigh 4.
    await like_times(handlers, old, 1, T0 - 6 * HOUR, range(100, 110))
    await like_times(handlers, new, 2, T0, range(100, 104))
    assert [t.post_id for t in await store.trending(10)] == [new, old]
    weights = {t.post_id: t.weight for t in await store.trending(10)}
    assert weights[new] / weights[old] == pytest.approx(4 / 1.25)


async def test_a_redelivered_event_counts_once(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    post = post_at(T0)
    await like_times(handlers, post, 1, T0, range(100, 102))
    again = liked(post, 1, 102, T0 + 5)
    await handlers.on_engagement(again)
    before = await store.trending(10)
    await handlers.on_engagement(again)
    assert await store.trending(10) == before
    assert await store.affinity(102, T0 + 5) == pytest.approx({1: 1.0})


async def test_unliking_again_and_again_never_raises_a_post(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    post = post_at(T0)
    await like_times(handlers, post, 1, T0, range(100, 103))
    [before] = await store.trending(10)
    for minute in range(1, 6):
        at = T0 + minute * 60_000
        await handlers.on_engagement(unliked(post, 1, 100, at))
        await handlers.on_engagement(liked(post, 1, 100, at))
    [after] = await store.trending(10)
    assert after.weight <= before.weight * 1.0001


async def test_comments_weigh_two_and_deleting_one_takes_its_replies_back(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    post = post_at(T0)
    for user in (100, 101, 102):
        created = events_pb2.CommentCreated(
            event_id=next(_events), comment_id=user, post_id=post, post_author_id=1, author_id=user
        )
        created.occur_time.FromMilliseconds(T0)
        await handlers.on_engagement(created)
    await like_times(handlers, post_at(T0, 1), 2, T0, range(100, 105))
    assert [t.post_id for t in await store.trending(10)] == [post, post_at(T0, 1)]  # 3 comments = 6 likes > 5
    deleted = events_pb2.CommentDeleted(event_id=next(_events), comment_id=100, post_id=post, author_id=100)
    deleted.reply_ids.extend([101])
    deleted.occur_time.FromMilliseconds(T0)
    await handlers.on_engagement(deleted)  # 2 of 3 interactions gone: below the threshold
    assert [t.post_id for t in await store.trending(10)] == [post_at(T0, 1)]
    assert 1 not in await store.affinity(100, T0)  # its comment on 1's post is taken back


async def test_a_deleted_post_leaves_and_later_events_are_ignored(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    post = post_at(T0)
    await like_times(handlers, post, 1, T0, range(100, 103))
    deleted = events_pb2.PostDeleted(event_id=next(_events), post_id=post, author_id=1)
    deleted.occur_time.FromMilliseconds(T0 + 1)
    await handlers.on_post_deleted(deleted)
    assert await store.trending(10) == []
    await like_times(handlers, post, 1, T0 + 2, range(103, 108))  # late likes (in flight at the delete)
    assert await store.trending(10) == []


async def test_posts_older_than_the_window_never_trend_and_leave_the_state(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    old = post_at(T0 - TRENDING_WINDOW_MS - HOUR)
    await like_times(handlers, old, 1, T0, range(100, 105))
    assert await store.trending(10) == []
    recent = post_at(T0 - TRENDING_WINDOW_MS + HOUR)
    await like_times(handlers, recent, 1, T0, range(100, 105))
    assert [t.post_id for t in await store.trending(10)] == [recent]
    # Two hours later the post has left the window: the next event prunes it.
    await like_times(handlers, post_at(T0), 2, T0 + 2 * HOUR, range(100, 103))
    assert [t.post_id for t in await store.trending(10)] == [post_at(T0)]


async def test_rebasing_keeps_order_and_ratios(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    start = T0
    a, b = post_at(start), post_at(start, 1)
    await like_times(handlers, a, 1, start, range(100, 104))
    await like_times(handlers, b, 2, start + 1, range(100, 103))
    # One day later (past REBASE_AFTER_MS) an event rebases every weight; then one more like on b.
    later = start + REBASE_AFTER_MS + HOUR
    c = post_at(later)
    await like_times(handlers, c, 3, later, range(100, 103))
    await handlers.on_engagement(liked(b, 2, 200, later))
    weights = {t.post_id: t.weight for t in await store.trending(10)}
    assert weights[a] / weights[c] == pytest.approx(4 / 3 * 2 ** (-(later - start) / (2 * HOUR)), rel=1e-3)
    assert weights[b] == pytest.approx(weights[c] / 3 * (3 * 2 ** (-(later - start - 1) / (2 * HOUR)) + 1), rel=1e-3)
    assert max(weights.values()) < 16  # rebased: weights stay near the scale of the latest events


async def test_affinity_decays_with_its_half_life_and_is_per_reader(store: SignalStore) -> None:
    handlers = SignalHandlers(store)
    await handlers.on_engagement(liked(post_at(T0), 1, 100, T0))
    created = events_pb2.CommentCreated(
        event_id=next(_events), comment_id=1, post_id=post_at(T0), post_author_id=1, author_id=100
    )
    created.occur_time.FromMilliseconds(T0)
    await handlers.on_engagement(created)
    assert await store.affinity(100, T0) == pytest.approx({1: 3.0})
    assert await store.affinity(100, T0 + AFFINITY_HALF_LIFE_MS) == pytest.approx({1: 1.5})
    assert await store.affinity(101, T0) == {}
    # Past several half-lives an event rebases the reader's weights; the value is unchanged.
    later = T0 + 9 * AFFINITY_HALF_LIFE_MS
    await handlers.on_engagement(liked(post_at(T0, 5), 2, 100, later))
    assert await store.affinity(100, later) == pytest.approx({1: 3.0 / 2**9, 2: 1.0})


async def test_a_frozen_ranking_reads_back_in_slices_until_it_is_gone(store: SignalStore) -> None:
    ids = [post_at(T0, n) for n in range(10)]
    snapshot = await store.freeze(42, ids)
    assert await store.thawed(42, snapshot, 0, 4) == ids[:4]
    assert await store.thawed(42, snapshot, 8, 4) == ids[8:]
    assert await store.thawed(42, snapshot, 10, 4) == []
    assert await store.thawed(43, snapshot, 0, 4) is None  # another viewer's token names nothing of theirs
    assert await store.thawed(42, snapshot + 1, 0, 4) is None


async def test_an_engagement_event_drops_what_the_cache_holds_of_it() -> None:
    """The second drop (feed_svc.consumers): a value engagement_svc failed to drop goes with the event."""
    now = int(time.time() * 1000)
    post, other = post_at(now - 1000), post_at(now - 1000, 1)
    redis = connect_redis(ENV.redis_url)
    namespace = f"signals-{uuid.uuid4().hex[:12]}"
    cache = EngagementCache(redis, namespace)
    handlers = SignalHandlers(SignalStore(redis, namespace, min_interactions=3), cache)
    read = await cache.read([post, other], 7)
    await cache.fill_counts(read, {post: (5, 0, 0), other: (1, 0, 0)})
    assert await cache.fill_viewer(7, read, 0, liked=[post], saved=[])
    await handlers.on_engagement(unliked(post, 99, 7, now))
    after = await cache.read([post, other], 7)
    assert after.counts == {other: (1, 0, 0)} and after.viewer is None
    comment = events_pb2.CommentCreated(event_id=next(_events), post_id=other, post_author_id=99, author_id=8)
    comment.occur_time.FromMilliseconds(now)
    await handlers.on_engagement(comment)
    assert (await cache.read([other], None)).counts == {}
    async for key in redis.scan_iter(match=f"{namespace}:*"):
        await redis.delete(key)
    await redis.aclose()
