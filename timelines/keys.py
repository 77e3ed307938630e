"""The keys of the timeline layout (see the table in `timelines/__init__.py`)."""

from __future__ import annotations

from mesh.redis_client import Keys


class TimelineKeys:
    """ "<ns>:feed:{uid}", "<ns>:outbox:{uid}" and "<ns>:pulled:{uid}" for one deployment."""

    def __init__(self, namespace: str) -> None:
        self._keys = Keys(namespace)

    def inbox(self, user_id: int) -> str:
        return self._keys.named("feed", user_id)

    def outbox(self, author_id: int) -> str:
        return self._keys.named("outbox", author_id)

    def pulled(self, author_id: int) -> str:
        return self._keys.named("pulled", author_id)

    def every_inbox(self) -> str:
        """A SCAN pattern matching every inbox of the deployment (a user's erasure reads them all)."""
        return self._keys.named("feed", "*")
