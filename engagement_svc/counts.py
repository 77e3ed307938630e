"""Counts for readers (a page of posts in one call) and for operators (recounting from the rows)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from engagement_svc import repository as repo
from engagement_svc.repository import PostEngagement
from mesh.db import Database
from mesh.errors import invalid_field

log = logging.getLogger("engagement_svc.counts")

MAX_BATCH = 100


def _check_batch(post_ids: Sequence[int]) -> None:
    if len(post_ids) > MAX_BATCH:
        raise invalid_field("post_ids", f"at most {MAX_BATCH} ids per call (got {len(post_ids)})")


class CountService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def batch_get(self, viewer_id: int, post_ids: Sequence[int]) -> list[PostEngagement]:
        """Like, comment and save counts of each post, and whether the viewer (0: nobody) liked and saved
        it, in request order, from one query. Unknown and deleted posts have zero counts. INVALID_ARGUMENT
        (post_ids) above MAX_BATCH ids."""
        _check_batch(post_ids)
        if not post_ids:
            return []
        # One statement: no transaction needed (it reads one snapshot by itself).
        async with self._db.read_only(transaction=False) as session:
            found = await repo.engagement(session, post_ids, viewer_id)
        return [found.get(p) or PostEngagement(p, 0, 0, 0, False, False) for p in post_ids]

    async def reconcile(self, post_ids: Sequence[int]) -> list[PostEngagement]:
        """Recomputes each post's counters and reply counts from its rows, one post at a time, each
        under the post's exclusive lock (its writes in flight finish first, new ones wait); the counts
        after, in request order. A drift found is logged. INVALID_ARGUMENT (post_ids) above MAX_BATCH."""
        _check_batch(post_ids)
        results = []
        for post_id in post_ids:
            async with self._db.unit_of_work() as session:
                await repo.hold_post(session, post_id, exclusive=True)
                before, after = await repo.recount(session, post_id)
            if (before.likes, before.comments, before.saves) != (after.likes, after.comments, after.saves):
                log.warning(
                    "post counts drifted; reconciled",
                    extra={
                        "post_id": post_id,
                        "likes": f"{before.likes} -> {after.likes}",
                        "comments": f"{before.comments} -> {after.comments}",
                        "saves": f"{before.saves} -> {after.saves}",
                    },
                )
            results.append(PostEngagement(post_id, after.likes, after.comments, after.saves, False, False))
        return results
