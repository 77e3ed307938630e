"""Inboxes and outboxes as Redis sorted sets (the layout is described in `timelines/__init__.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from mesh.ids import timestamp_ms
from timelines.keys import TimelineKeys
from timelines.settings import TimelineSettings

LIVE = "live"
_WIDTH = 19

# KEYS[1] timeline; ARGV[1] cap; ARGV[2] ttl seconds (0: leave as is); ARGV[3..] score, member pairs.
# Adds only to a live timeline; keeps the newest `cap` posts.
_ADD_IF_LIVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], unpack(ARGV, 3))
local excess = redis.call('ZCARD', KEYS[1]) - (tonumber(ARGV[1]) + 1)
if excess > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1) end
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# Same arguments; makes the timeline live and adds the posts (ARGV[3..] may be empty). It never
# deletes: a fan-out write racing a rebuild is kept, since both only ever add posts.
_BUILD = """
redis.call('ZADD', KEYS[1], 'inf', 'live')
if #ARGV > 2 then redis.call('ZADD', KEYS[1], unpack(ARGV, 3)) end
local excess = redis.call('ZCARD', KEYS[1]) - (tonumber(ARGV[1]) + 1)
if excess > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1) end
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


def member(post_id: int) -> str:
    return f"{post_id:0{_WIDTH}d}"


def score(post_id: int) -> int:
    return timestamp_ms(post_id)


def _pairs(post_ids: Iterable[int]) -> list[Any]:
    args: list[Any] = []
    for post_id in post_ids:
        args += [score(post_id), member(post_id)]
    return args


class Timelines:
    """Inboxes and outboxes of one deployment (namespace)."""

    def __init__(
        self, redis: Any, keys: TimelineKeys, *, feed_max: int, outbox_max: int, inbox_ttl_seconds: int
    ) -> None:
        self.redis = redis
        self._keys = keys
        self.feed_max = feed_max
        self.outbox_max = outbox_max
        self._ttl = inbox_ttl_seconds
        self._add_if_live = redis.register_script(_ADD_IF_LIVE)
        self._build = redis.register_script(_BUILD)

    @classmethod
    def from_settings(cls, redis: Any, settings: TimelineSettings) -> Timelines:
        return cls(
            redis,
            TimelineKeys(settings.namespace),
            feed_max=settings.feed_max_items,
            outbox_max=settings.outbox_max_items,
            inbox_ttl_seconds=settings.feed_inbox_ttl_seconds,
        )

    def inbox_key(self, user_id: int) -> str:
        return self._keys.inbox(user_id)

    def outbox_key(self, author_id: int) -> str:
        return self._keys.outbox(author_id)

    # The pulled marker (fanout_svc only) ------------------------------------------------------

    async def mark_pulled(self, author_id: int, post_id: int) -> None:
        """Records that the author posted without being pushed (as a celebrity)."""
        await self.redis.set(self._keys.pulled(author_id), post_id)

    async def was_pulled(self, author_id: int) -> bool:
        return bool(await self.redis.exists(self._keys.pulled(author_id)))

    async def clear_pulled(self, author_id: int) -> None:
        await self.redis.delete(self._keys.pulled(author_id))

    # Writes ------------------------------------------------------------------------------------

    async def push(self, post_ids: Sequence[int], user_ids: Sequence[int]) -> int:
        """Adds the posts to each live inbox among `user_ids` (one pipeline); returns how many were live."""
        if not user_ids or not post_ids:
            return 0
        args = [self.feed_max, 0, *_pairs(post_ids)]
        # Raw EVALSHA: redis-py refuses Script objects in a cluster pipeline but routes EVALSHA by its
        # key like any command. A server without the script (new, restarted, just promoted) gets it
        # loaded and the pipeline is sent again, which is safe: the script is idempotent.
        for attempt in (1, 2):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for user_id in user_ids:
                        pipe.execute_command("EVALSHA", self._add_if_live.sha, 1, self.inbox_key(user_id), *args)
                    results = await pipe.execute()
                break
            except NoScriptError:
                if attempt == 2:
                    raise
                await self.redis.script_load(_ADD_IF_LIVE)
        return sum(1 for r in results if r == 1)

    async def add_to_inbox_if_live(self, user_id: int, post_ids: Sequence[int]) -> bool:
        """Adds posts to one inbox if it is live (follow backfill); returns whether it was."""
        if not post_ids:
            return False
        args = [self.feed_max, 0, *_pairs(post_ids)]
        return bool(await self._add_if_live(keys=[self.inbox_key(user_id)], args=args))

    async def remove_from_inbox(self, user_id: int, post_ids: Sequence[int]) -> None:
        if post_ids:
            await self.redis.zrem(self.inbox_key(user_id), *[member(p) for p in post_ids])

    async def build_inbox(self, user_id: int, post_ids: Sequence[int]) -> None:
        """Makes the inbox live holding these posts (capped), with a fresh TTL."""
        args = [self.feed_max, self._ttl, *_pairs(post_ids)]
        await self._build(keys=[self.inbox_key(user_id)], args=args)

    async def add_to_outbox(self, author_id: int, post_id: int) -> bool:
        """Adds to a live outbox; returns False if the outbox is cold (it must be rebuilt from posts)."""
        args = [self.outbox_max, 0, score(post_id), member(post_id)]
        return bool(await self._add_if_live(keys=[self.outbox_key(author_id)], args=args))

    async def build_outbox(self, author_id: int, post_ids: Sequence[int]) -> None:
        await self._build(keys=[self.outbox_key(author_id)], args=[self.outbox_max, 0, *_pairs(post_ids)])

    async def remove_from_outbox(self, author_id: int, post_id: int) -> None:
        await self.redis.zrem(self.outbox_key(author_id), member(post_id))

    async def touch_inbox(self, user_id: int) -> None:
        await self.redis.expire(self.inbox_key(user_id), self._ttl)

    # Erasure (fanout_svc.erasure) ---------------------------------------------------------------

    async def forget_user(self, user_id: int) -> list[int]:
        """Deletes the user's inbox, outbox and pulled marker; the post ids their outbox held."""
        members = await self.redis.zrange(self.outbox_key(user_id), 0, -1)
        for key in (self.inbox_key(user_id), self.outbox_key(user_id), self._keys.pulled(user_id)):
            # One key per command: they live in different slots on Redis Cluster.
            await self.redis.delete(key)
        return [int(m) for m in map(_decoded, members) if m != LIVE]

    async def remove_from_every_inbox(self, post_ids: Sequence[int], *, keys_per_round: int) -> int:
        """Removes the posts from every inbox of the deployment, SCANning the inbox keys `keys_per_round`
        at a time: one pipeline reads the round's inboxes, a second removes the posts from those that
        hold any (reading an inbox costs less than sending it every post id to remove, and most hold
        none); how many inboxes held any. O(inboxes): for an erasure, whose followers are gone by the
        time it runs. A post pushed into an inbox between the two pipelines stays (feed_svc drops a
        deleted post from every page)."""
        wanted = {member(p) for p in post_ids}
        if not wanted:
            return 0
        touched = 0
        batch: list[str] = []

        async def flush() -> int:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.zrange(key, 0, -1)
                contents = await pipe.execute()
            found = {
                key: held
                for key, members in zip(batch, contents, strict=True)
                if (held := wanted & {_decoded(m) for m in members})
            }
            batch.clear()
            if found:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, held in found.items():
                        pipe.zrem(key, *held)
                    await pipe.execute()
            return len(found)

        async for key in self.redis.scan_iter(match=self._keys.every_inbox(), count=keys_per_round):
            batch.append(_decoded(key))
            if len(batch) >= keys_per_round:
                touched += await flush()
        if batch:
            touched += await flush()
        return touched

    # Reads -------------------------------------------------------------------------------------

    async def page(self, key: str, before: int | None, limit: int) -> list[int] | None:
        """Up to `limit` post ids of a timeline older than post `before` (newest first), or None if
        the timeline is not live."""
        pages = await self.pages([key], before, limit)
        return pages[0]

    async def pages(
        self, keys: Sequence[str], before: int | None, limit: int, *, touch: Sequence[str] = ()
    ) -> list[list[int] | None]:
        """`page` for several timelines in one round trip (a cluster client splits it by slot); the
        TTL of the timelines in `touch` (inboxes being read) is refreshed in the same round trip."""
        first = before is None
        # A first page reads from +inf inclusive, so a live timeline answers with LIVE first: one
        # command per timeline. A later page starts below `before` and asks EXISTS beside it.
        # Posts in the same millisecond as `before` but not older than it are fetched and dropped,
        # so ask for a few more than needed; a millisecond rarely holds many posts of one timeline.
        high = "+inf" if before is None else score(before)
        fetch = limit + 1 if first else limit + 16
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                if not first:
                    pipe.exists(key)
                pipe.zrange(key, high, "-inf", byscore=True, desc=True, offset=0, num=fetch)
            for key in touch:
                pipe.expire(key, self._ttl)
            results = await pipe.execute()
        if first:
            ranges = results[: len(keys)]
            lives = [bool(members) and _decoded(members[0]) == LIVE for members in ranges]
        else:
            ranges = results[1 : 2 * len(keys) : 2]
            lives = [bool(live) for live in results[0 : 2 * len(keys) : 2]]
        pages: list[list[int] | None] = []
        bound = member(before) if before is not None else None
        for key, live, members in zip(keys, lives, ranges, strict=True):
            if not live:
                pages.append(None)
                continue
            ids = _older_than(members, bound)
            offset = fetch
            while len(ids) < limit and len(members) == fetch:
                # Rare: the fetched rows were mostly posts of `before`'s millisecond; read on.
                members = await self.redis.zrange(key, high, "-inf", byscore=True, desc=True, offset=offset, num=fetch)
                ids += _older_than(members, bound)
                offset += fetch
            pages.append(ids[:limit])
        return pages


def _decoded(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member


def _older_than(members: Sequence[bytes | str], bound: str | None) -> list[int]:
    """The post ids among a timeline's members (LIVE, always first, left out) below `bound`'s."""
    if members and _decoded(members[0]) == LIVE:
        members = members[1:]
    # int() reads the digits of bytes and str alike: no decoding per member.
    ids = list(map(int, members))
    if bound is None:
        return ids
    below = int(bound)
    return [post_id for post_id in ids if post_id < below]
