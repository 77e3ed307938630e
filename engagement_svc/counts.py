"""Counts for readers (a page of posts in one call) and for operators (recounting from the rows)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from engagement_cache import EngagementCache
from engagement_svc import repository as repo
from engagement_svc.repository import PostEngagement
from mesh.db import Database
from mesh.errors import invalid_field

log = logging.getLogger("engagement_svc.counts")

MAX_BATCH = 100
# ListViewerEngagement's default and largest number of likes (and of saves) per answer.
DEFAULT_WINDOW = 5_000
MAX_WINDOW = 10_000

CACHE_DROP_FAILURES = Counter(
    "glimpse_engagement_cache_drop_failures_total",
    "Commits whose cached counts or reader windows could not be dropped (stale until their max age).",
)


def _check_batch(post_ids: Sequence[int]) -> None:
    if len(post_ids) > MAX_BATCH:
        raise invalid_field("post_ids", f"at most {MAX_BATCH} ids per call (got {len(post_ids)})")


@dataclass(frozen=True)
class ViewerWindow:
    liked: list[int]
    saved: list[int]
    complete_since: int


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

    async def viewer_window(self, viewer_id: int, since: int, limit: int) -> ViewerWindow:
        """The viewer's likes and saves of posts with ids >= `since`, newest post first, at most `limit`
        of each (0: DEFAULT_WINDOW), from one snapshot; `complete_since` is where both lists are
        complete (above `since` when one stopped at the limit). INVALID_ARGUMENT (limit) outside
        0..MAX_WINDOW."""
        if not 0 <= limit <= MAX_WINDOW:
            raise invalid_field("limit", f"must be 0..{MAX_WINDOW} (0: {DEFAULT_WINDOW}), got {limit}")
        limit = limit or DEFAULT_WINDOW
        since = max(since, 0)
        async with self._db.read_only(one_snapshot=True) as session:
            liked, saved = await repo.viewer_window(session, viewer_id, since, limit)
        complete = since
        for found in (liked, saved):
            if len(found) == limit:
                complete = max(complete, found[-1])
        return ViewerWindow([p for p in liked if p >= complete], [p for p in saved if p >= complete], complete)

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


class CacheDrops:
    """The after-commit hook (Database.after_commit) that drops from the engagement cache what the
    unit of work changed (repository.CHANGED_POSTS and CHANGED_VIEWERS), before the RPC that made the
    change answers: the caller's next read sees it. A failure is counted and raised to mesh.db,
    which logs it; the entries then stay stale until the readers' max age."""

    def __init__(self, cache: EngagementCache) -> None:
        self._cache = cache

    async def __call__(self, info: dict[str, Any]) -> None:
        posts = info.get(repo.CHANGED_POSTS)
        viewers = info.get(repo.CHANGED_VIEWERS)
        if not posts and not viewers:
            return
        try:
            await self._cache.drop(posts or (), viewers or ())
        except Exception:
            CACHE_DROP_FAILURES.inc()
            raise
