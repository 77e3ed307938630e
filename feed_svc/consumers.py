"""One handler per event: engagement events keep what is trending (explore) and readers' affinity with
authors (the ranked feed) in feed_svc.signals; a deleted post leaves the trending state.

Each engagement event also drops the post's cached counts (and, for a like or unlike, the liker's
window) from the engagement cache. engagement_svc already dropped them before answering; this second,
at-least-once drop repairs one that failed (Redis unreachable from engagement_svc at that moment)
within seconds, instead of leaving it to the readers' max age.

Each handler is idempotent (the scripts record event ids, feed_svc.signals): handling an event twice,
or crashing between the two writes and the ack, leaves the same state. What counts:
- a like is one interaction worth 1, a comment (or reply) one worth 2 (ranking.COMMENT_WEIGHT);
- a post's author liking or commenting on it counts for nothing (no self-promotion);
- an unlike or a deleted comment takes its interaction back; a deleted top-level comment takes its
  replies with it, each as another comment. A deleted comment's affinity is taken back from its
  author only (the events do not name the replies' authors), and only while the post has any
  interactions in the trending window (CommentDeleted does not name the post's author either).
"""

from __future__ import annotations

from engagement_cache import EngagementCache
from feed_svc.ranking import COMMENT_WEIGHT
from feed_svc.signals import SignalStore
from glimpse.events.v1 import events_pb2
from mesh.ids import timestamp_ms

EngagementEvent = events_pb2.PostLiked | events_pb2.PostUnliked | events_pb2.CommentCreated | events_pb2.CommentDeleted


class SignalHandlers:
    def __init__(self, signals: SignalStore, cache: EngagementCache | None = None) -> None:
        self._signals = signals
        self._cache = cache

    async def on_engagement(self, event: EngagementEvent) -> None:
        if self._cache is not None:
            liker = event.user_id if isinstance(event, events_pb2.PostLiked | events_pb2.PostUnliked) else None
            await self._cache.drop(post_ids=[event.post_id], viewer_ids=[liker] if liker else [])
        at = event.occur_time.ToMilliseconds()
        if isinstance(event, events_pb2.PostLiked | events_pb2.PostUnliked):
            sign = 1 if isinstance(event, events_pb2.PostLiked) else -1
            await self._count(event, at, event.post_author_id, event.user_id, sign, sign * 1.0)
        elif isinstance(event, events_pb2.CommentCreated):
            await self._count(event, at, event.post_author_id, event.author_id, 1, COMMENT_WEIGHT)
        else:
            author = await self._signals.author_of(event.post_id)
            if author is None:
                return
            removed = len(event.reply_ids) + (event.author_id != author)
            await self._signals.interact(
                event.event_id,
                at,
                event.post_id,
                author,
                timestamp_ms(event.post_id),
                -removed,
                -removed * COMMENT_WEIGHT,
            )
            # author_id 0: the comment's author was erased (engagement_svc.erasure), with their affinity.
            if event.author_id and event.author_id != author:
                await self._signals.add_affinity(event.event_id, at, event.author_id, author, -COMMENT_WEIGHT)

    async def _count(
        self, event: EngagementEvent, at: int, post_author: int, actor: int, count: int, weight: float
    ) -> None:
        if actor == post_author:
            return
        post = event.post_id
        await self._signals.interact(event.event_id, at, post, post_author, timestamp_ms(post), count, weight)
        await self._signals.add_affinity(event.event_id, at, actor, post_author, weight)

    async def on_post_deleted(self, event: events_pb2.PostDeleted) -> None:
        await self._signals.remove(event.post_id, event.occur_time.ToMilliseconds())
