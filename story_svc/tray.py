"""The story tray above the home feed: the caller first (if they have active stories), then the
accounts they follow with active stories, those with unseen stories first, then by most recent story.

Followees come from graph_svc (ListFolloweeIds: one message, following is capped), blocks and mutes
from the shared `visibility` client (a muted account leaves the tray; its stories can still be
opened), and every author left is checked against the visibility rule (a private account the caller
no longer follows, a block either way).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.db import Database
from story_svc import repository as repo
from story_svc.repository import TrayRow
from visibility import Visibility


class TrayService:
    def __init__(
        self, db: Database, graph: graph_pb2_grpc.GraphServiceStub, visibility: Visibility, *, timeout: float
    ) -> None:
        self._db = db
        self._graph = graph
        self._visibility = visibility
        self._timeout = timeout

    async def tray(self, viewer_id: int) -> list[TrayRow]:
        """The viewer's tray in display order; the viewer's own entry has `has_unseen` False.
        graph_svc's failures (UNAVAILABLE, DEADLINE_EXCEEDED) pass through as its gRPC error."""
        followees, filters = await asyncio.gather(
            self._graph.ListFolloweeIds(graph_pb2.ListFolloweeIdsRequest(user_id=viewer_id), timeout=self._timeout),
            self._visibility.home_filters(viewer_id),
        )
        authors = [viewer_id, *(a for a in followees.followee_ids if a != viewer_id and not filters.hides(a))]
        async with self._db.read_only() as session:
            rows = await repo.tray_rows(session, viewer_id, authors)
        others = [row.author_id for row in rows if row.author_id != viewer_id]
        allowed = await self._visibility.visible(viewer_id, others) if others else set()
        own = [replace(row, has_unseen=False) for row in rows if row.author_id == viewer_id]
        followed = [row for row in rows if row.author_id in allowed]
        followed.sort(key=lambda row: (not row.has_unseen, -row.latest_story_time.timestamp(), -row.author_id))
        return own + followed
