"""feed_svc's own Redis state, kept from engagement events: what is trending (explore) and each reader's
affinity with authors (the ranked home feed), plus the frozen rankings page tokens name.

Every key feed_svc writes (all rebuildable: lost state only means rankings start from zero):

    key                                   what                                             life
    <ns>:trending:{trending}              ZSET post -> decayed weight; only posts with at  posts leave
                                          least explore_min_interactions, in the window    the window
    <ns>:trending-posts:{trending}        HASH "<post>:w" weight, "<post>:n" interactions, (same)
                                          "<post>:a" author, for every post with any
    <ns>:trending-recent:{trending}       ZSET post -> creation ms (prunes the window)     (same)
    <ns>:trending-gone:{trending}         ZSET deleted post -> ms (late events ignored)    window
    <ns>:trending-seen:{trending}         ZSET event id -> event ms (redelivery dedup)     DEDUP_MS
    <ns>:trending-epoch:{trending}        the weights' epoch (ms)                          -
    <ns>:affinity:{reader}                HASH author -> decayed weight, "_epoch"          AFFINITY_TTL
    <ns>:affinity-seen:{reader}           ZSET event id -> event ms (redelivery dedup)     DEDUP_MS
    <ns>:ranking:{viewer}:<snapshot>      a frozen ranking: post ids, int64 little-endian  SNAPSHOT_TTL

Decay without rescans: an interaction at time t adds 2^((t - epoch) / half_life) to its post's
weight, so every weight carries the same factor 2^(-(now - epoch) / half_life) and the ZSET's order
is the decayed order at any `now`, with nothing rewritten as time passes. The weights grow by 2^12
a day (2-hour half-life), so once the epoch is REBASE_AFTER_MS old the next event multiplies every
weight of the window by the same factor and moves the epoch (O(posts in the window), once a day).
An unlike or a deleted comment takes away what the same interaction would add at that moment
(clamped at zero), so liking and unliking over and over never raises a post.

All the trending keys share one hash tag: one slot on Redis Cluster, so each event is one atomic
script. It is a small set (the posts of the last TRENDING_WINDOW_MS with any interaction), and the
one slot is a hot one by design; a deployment outgrowing it would shard by post and merge the tops.

Handling is at-least-once (mesh.bus): each script first records the event id and does nothing for
an id it has seen within DEDUP_MS (redeliveries come within ack_wait and the backoffs, minutes).
"""

from __future__ import annotations

import math
import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mesh.redis_client import Keys

# Explore's velocity half-life, as Mastodon's trending statuses (Trends::Statuses, score_halflife).
TRENDING_HALF_LIFE_MS = 2 * 3_600_000
# Posts older than this never trend (and leave the state).
TRENDING_WINDOW_MS = 48 * 3_600_000
# Affinity half-life: what a reader engaged with last week still counts half.
AFFINITY_HALF_LIFE_MS = 7 * 24 * 3_600_000
# A reader's affinity, untouched this long, is dropped (2^-4 of its weight is left by then).
AFFINITY_TTL_SECONDS = 28 * 24 * 3600
REBASE_AFTER_MS = 24 * 3_600_000
AFFINITY_REBASE_AFTER_MS = 8 * AFFINITY_HALF_LIFE_MS
DEDUP_MS = 3_600_000
# How long a page sequence's frozen ranking is kept (its page tokens stop working after this).
SNAPSHOT_TTL_SECONDS = 15 * 60
# Window posts pruned per event: more than leave the window between two events.
_PRUNE = 16

_INTERACT = """
local trending, posts, recent, seen, epoch_key, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local event_id, t, post = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local author, created = ARGV[4], tonumber(ARGV[5])
local dcount, dweight = tonumber(ARGV[6]), tonumber(ARGV[7])
local min_n, window, half_life = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local rebase_after, dedup, prune = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
if redis.call('ZADD', seen, 'NX', t, event_id) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', t - dedup)
redis.call('ZREMRANGEBYSCORE', gone, '-inf', t - window)
if redis.call('ZSCORE', gone, post) or created < t - window then return 0 end
local epoch = tonumber(redis.call('GET', epoch_key))
if not epoch then
  epoch = t
  redis.call('SET', epoch_key, t)
elseif t - epoch > rebase_after then
  local factor = 2 ^ (-(t - epoch) / half_life)
  local ranked = redis.call('ZRANGE', trending, 0, -1, 'WITHSCORES')
  for i = 1, #ranked, 2 do
    redis.call('ZADD', trending, tonumber(ranked[i + 1]) * factor, ranked[i])
  end
  for _, id in ipairs(redis.call('ZRANGE', recent, 0, -1)) do
    local w = tonumber(redis.call('HGET', posts, id .. ':w'))
    if w then redis.call('HSET', posts, id .. ':w', w * factor) end
  end
  epoch = t
  redis.call('SET', epoch_key, t)
end
local weight = (tonumber(redis.call('HGET', posts, post .. ':w')) or 0) + dweight * 2 ^ ((t - epoch) / half_life)
if weight < 0 then weight = 0 end
local n = (tonumber(redis.call('HGET', posts, post .. ':n')) or 0) + dcount
if n < 0 then n = 0 end
redis.call('HSET', posts, post .. ':w', weight, post .. ':n', n, post .. ':a', author)
redis.call('ZADD', recent, created, post)
if n >= min_n and weight > 0 then
  redis.call('ZADD', trending, weight, post)
else
  redis.call('ZREM', trending, post)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', recent, '-inf', t - window, 'LIMIT', 0, prune)) do
  redis.call('ZREM', recent, id)
  redis.call('ZREM', trending, id)
  redis.call('HDEL', posts, id .. ':w', id .. ':n', id .. ':a')
end
return 1
"""

_REMOVE = """
local trending, posts, recent, gone = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local post, t = ARGV[1], tonumber(ARGV[2])
redis.call('ZADD', gone, t, post)
redis.call('ZREM', trending, post)
redis.call('ZREM', recent, post)
redis.call('HDEL', posts, post .. ':w', post .. ':n', post .. ':a')
return 1
"""

_TOP = """
local ranked = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ranked, 2 do
  out[#out + 1] = ranked[i]
  out[#out + 1] = ranked[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], ranked[i] .. ':a') or '0'
end
return out
"""

_AFFINITY = """
local affinity, seen = KEYS[1], KEYS[2]
local event_id, t, author, dweight = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local half_life, rebase_after, dedup, ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
if redis.call('ZADD', seen, 'NX', t, event_id) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', t - dedup)
redis.call('PEXPIRE', seen, dedup)
local epoch = tonumber(redis.call('HGET', affinity, '_epoch'))
if not epoch then
  epoch = t
  redis.call('HSET', affinity, '_epoch', t)
elseif t - epoch > rebase_after then
  local factor = 2 ^ (-(t - epoch) / half_life)
  local all = redis.call('HGETALL', affinity)
  for i = 1, #all, 2 do
    if all[i] ~= '_epoch' then
      local v = tonumber(all[i + 1]) * factor
      if v < 1e-9 then redis.call('HDEL', affinity, all[i]) else redis.call('HSET', affinity, all[i], v) end
    end
  end
  epoch = t
  redis.call('HSET', affinity, '_epoch', t)
end
local v = (tonumber(redis.call('HGET', affinity, author)) or 0) + dweight * 2 ^ ((t - epoch) / half_life)
if v <= 0 then redis.call('HDEL', affinity, author) else redis.call('HSET', affinity, author, v) end
redis.call('EXPIRE', affinity, ttl)
return 1
"""


@dataclass(frozen=True)
class TrendingPost:
    """A trending post, its author and its weight (comparable between posts only: see the module)."""

    post_id: int
    author_id: int
    weight: float


class SignalStore:
    """The Redis state above, for one deployment (namespace)."""

    def __init__(self, redis: Any, namespace: str, *, min_interactions: int) -> None:
        self._redis = redis
        self._keys = Keys(namespace)
        self._min = min_interactions
        tag = "trending"
        self._trending = [
            self._keys.named(kind, tag)
            for kind in ("trending", "trending-posts", "trending-recent", "trending-seen", "trending-epoch")
        ]
        self._gone = self._keys.named("trending-gone", tag)
        self._interact = redis.register_script(_INTERACT)
        self._remove = redis.register_script(_REMOVE)
        self._top = redis.register_script(_TOP)
        self._affinity = redis.register_script(_AFFINITY)

    # Explore ----------------------------------------------------------------------------------

    async def interact(
        self, event_id: int, at_ms: int, post_id: int, author_id: int, created_ms: int, count: int, weight: float
    ) -> bool:
        """Adds `count` interactions (negative: removes) worth `weight` like-equivalents at `at_ms`
        to a post; False if the event was handled before or the post is deleted or too old."""
        args = [
            event_id,
            at_ms,
            post_id,
            author_id,
            created_ms,
            count,
            weight,
            self._min,
            TRENDING_WINDOW_MS,
            TRENDING_HALF_LIFE_MS,
            REBASE_AFTER_MS,
            DEDUP_MS,
            _PRUNE,
        ]
        return bool(await self._interact(keys=[*self._trending, self._gone], args=args))

    async def remove(self, post_id: int, at_ms: int) -> None:
        """Forgets a deleted post; later events about it are ignored for TRENDING_WINDOW_MS."""
        keys = [self._trending[0], self._trending[1], self._trending[2], self._gone]
        await self._remove(keys=keys, args=[post_id, at_ms])

    async def author_of(self, post_id: int) -> int | None:
        """The author of a post with interactions in the window (None if it has none)."""
        author = await self._redis.hget(self._trending[1], f"{post_id}:a")
        return int(author) if author is not None else None

    async def trending(self, limit: int) -> list[TrendingPost]:
        """The `limit` heaviest trending posts, heaviest first."""
        flat = await self._top(keys=self._trending[:2], args=[limit])
        return [
            TrendingPost(int(flat[i]), int(flat[i + 2]), float(flat[i + 1]))
            for i in range(0, len(flat), 3)
            if int(flat[i + 2])
        ]

    # Affinity ---------------------------------------------------------------------------------

    async def add_affinity(self, event_id: int, at_ms: int, reader_id: int, author_id: int, weight: float) -> bool:
        """Adds `weight` like-equivalents (negative: removes) of `reader_id`'s affinity with
        `author_id` at `at_ms`; False if the event was handled before."""
        keys = [self._keys.named("affinity", reader_id), self._keys.named("affinity-seen", reader_id)]
        args = [
            event_id,
            at_ms,
            author_id,
            weight,
            AFFINITY_HALF_LIFE_MS,
            AFFINITY_REBASE_AFTER_MS,
            DEDUP_MS,
            AFFINITY_TTL_SECONDS,
        ]
        return bool(await self._affinity(keys=keys, args=args))

    async def affinity(self, reader_id: int, now_ms: int) -> dict[int, float]:
        """author -> `reader_id`'s decayed affinity at `now_ms`, in like-equivalents (> 0 only)."""
        raw = await self._redis.hgetall(self._keys.named("affinity", reader_id))
        fields = {_text(k): float(v) for k, v in raw.items()}
        epoch = fields.pop("_epoch", None)
        if epoch is None:
            return {}
        factor = math.pow(2.0, (epoch - now_ms) / AFFINITY_HALF_LIFE_MS)
        return {int(author): value * factor for author, value in fields.items() if value > 0}

    # Frozen rankings --------------------------------------------------------------------------

    async def freeze(self, viewer_id: int, post_ids: Sequence[int]) -> int:
        """Stores a ranking for SNAPSHOT_TTL_SECONDS; returns its id (for the page token)."""
        snapshot = secrets.randbits(62) + 1
        packed = struct.pack(f"<{len(post_ids)}q", *post_ids)
        await self._redis.set(self._snapshot_key(viewer_id, snapshot), packed, ex=SNAPSHOT_TTL_SECONDS)
        return snapshot

    async def thawed(self, viewer_id: int, snapshot: int, offset: int, count: int) -> list[int] | None:
        """Post ids `offset` to `offset + count` of a frozen ranking (fewer at its end), or None if
        it is gone (expired, or never issued to this viewer)."""
        key = self._snapshot_key(viewer_id, snapshot)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(key)
            pipe.getrange(key, offset * 8, (offset + count) * 8 - 1)
            exists, packed = await pipe.execute()
        if not exists:
            return None
        return list(struct.unpack(f"<{len(packed) // 8}q", packed))

    def _snapshot_key(self, viewer_id: int, snapshot: int) -> str:
        return f"{self._keys.named('ranking', viewer_id)}:{snapshot}"

    # Erasure (feed_svc.erasure) ---------------------------------------------------------------

    async def forget_user(self, user_id: int, *, keys_per_round: int) -> int:
        """Deletes the user's affinity, its dedup record and their frozen rankings, and takes them out
        of every other reader's affinity (a SCAN of the affinity keys, `keys_per_round` at a time);
        returns how many readers had an affinity with them. Their posts leave the trending state with
        their `posts.deleted` (`remove`)."""
        await self._redis.delete(self._keys.named("affinity", user_id))
        await self._redis.delete(self._keys.named("affinity-seen", user_id))
        async for key in self._redis.scan_iter(match=f"{self._keys.named('ranking', user_id)}:*", count=1000):
            await self._redis.delete(key)
        touched = 0
        batch: list[Any] = []

        async def flush() -> int:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hdel(key, str(user_id))
                removed = await pipe.execute()
            batch.clear()
            return sum(1 for n in removed if n)

        async for key in self._redis.scan_iter(match=self._keys.named("affinity", "*"), count=keys_per_round):
            batch.append(key)
            if len(batch) >= keys_per_round:
                touched += await flush()
        if batch:
            touched += await flush()
        return touched


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
