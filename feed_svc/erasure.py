"""feed_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's): the ranking signals.

feed_svc keeps no rows, only what its consumers derived from engagement events (feed_svc.signals): the
user's affinity with authors (what they liked and commented on), the rankings frozen for their page
sequences and their id in other readers' affinity are deleted (the other readers' affinity keys are
found by a SCAN, ERASURE_BATCH keys per pipeline). Their posts leave the trending state with the
`posts.deleted` events of post_svc's erasure.

Idempotent: deleting what is gone changes nothing.
"""

from __future__ import annotations

import logging

from feed_svc.signals import SignalStore
from glimpse.events.v1 import events_pb2
from mesh.erasure import ERASED, ERASURE_BATCH, ERASURES_FINISHED, erased_user

log = logging.getLogger("feed_svc.erasure")

ERASURE_DURABLE = "feed_erasure"


class SignalErasure:
    def __init__(self, signals: SignalStore, *, keys_per_round: int = ERASURE_BATCH) -> None:
        self._signals = signals
        self._keys_per_round = keys_per_round

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: the user's ranking signals. Redis being unreachable raises, and the
        bus retries."""
        user_id = erased_user(event)
        held = await self._signals.forget_user(user_id, keys_per_round=self._keys_per_round)
        ERASED.labels("affinity_entries").inc(held)
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info("user's ranking signals erased", extra={"user_id": user_id, "affinity": held})
