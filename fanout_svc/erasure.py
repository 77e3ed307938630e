"""fanout_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's): their timelines.

The user's inbox (`feed:{uid}`), outbox (`outbox:{uid}`) and pulled marker (`pulled:{uid}`) are
deleted, and the posts their outbox held leave every other inbox (a SCAN of the inbox keys, ERASURE_BATCH
keys per pipeline): by the time this runs graph_svc has deleted the follows, so the followers whose
inboxes hold those posts can no longer be asked for. That pass costs O(live inboxes of the
deployment): fine for a rare event, and bench erasure measures it. Inbox members are post ids, never
user ids; a post of theirs that an inbox still holds (older than what the outbox kept,
OUTBOX_MAX_ITEMS, or taken out of the outbox by its `posts.deleted` before this handler read it) is
deleted in post_svc, so feed_svc drops it from every page it would be on, and it leaves the inbox as
newer posts push it out (FEED_MAX_ITEMS) or the inbox expires (FEED_INBOX_TTL, 30 days).

Idempotent: deleting what is gone and removing absent members change nothing.
"""

from __future__ import annotations

import logging

from glimpse.events.v1 import events_pb2
from mesh.erasure import ERASED, ERASURE_BATCH, ERASURES_FINISHED, erased_user
from timelines.store import Timelines

log = logging.getLogger("fanout_svc.erasure")

ERASURE_DURABLE = "fanout_erasure"


class TimelineErasure:
    def __init__(self, timelines: Timelines, *, keys_per_round: int = ERASURE_BATCH) -> None:
        self._timelines = timelines
        self._keys_per_round = keys_per_round

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: the user's timelines, and their posts in others' inboxes. Redis being
        unreachable raises, and the bus retries."""
        user_id = erased_user(event)
        posts = await self._timelines.forget_user(user_id)
        inboxes = await self._timelines.remove_from_every_inbox(posts, keys_per_round=self._keys_per_round)
        ERASED.labels("timeline_posts").inc(len(posts))
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info("user's timelines erased", extra={"user_id": user_id, "posts": len(posts), "inboxes": inboxes})
