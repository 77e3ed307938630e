"""What a block takes away: each user's likes, comments and saves on the other's posts.

Instagram's rule, and what a blocker expects: once they block someone, that person's likes and
comments leave their posts (and the counts), and their own leave the blocked user's. Neither can see
the other's posts afterwards, so neither could otherwise undo what was left (an unlike of a post
you may not see is 404), and the blocker would keep counting engagement they can no longer see.
Unblocking restores nothing.

On `graph.blocked` (a durable consumer, at least once): for each direction, the owner's live posts
are listed from post_svc (ListPosts as a service, every page) and, per page, one unit of work holds
the posts, removes the other user's likes, saves and comments on them (a top-level comment with
every reply under it, as a deletion does), moves each post's counts by what was removed, and
announces each removed live comment (`engagement.comment_deleted`) and like
(`engagement.unliked`), as for an unlike or a deletion, through the outbox in the same transaction.
Idempotent: a redelivered event finds nothing left. A like or comment that raced the block (checked
as visible just before the block committed) and lands after this purge stays; it is hidden from the
blocker's lists like every comment of a blocked author, and counted.

Raises (for the bus to redeliver) what post_svc and the database raise.
"""

from __future__ import annotations

import logging
import random

from engagement_svc import repository as repo
from glimpse.events.v1 import events_pb2
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.db import Database
from mesh.outbox import Outbox

log = logging.getLogger("engagement_svc.blocks")

BLOCKS_DURABLE = "engagement_blocks"
# Posts per ListPosts page, and per unit of work (post_svc's page limit).
_PAGE = 100


class BlockPurge:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        posts: post_pb2_grpc.PostServiceStub,
        *,
        counter_shards: int,
        timeout: float,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._posts = posts
        self._shards = counter_shards
        self._timeout = timeout

    async def on_user_blocked(self, event: events_pb2.UserBlocked) -> None:
        """`graph.blocked`: the blocked user's engagement on the blocker's posts, and the blocker's on
        the blocked user's, removed (see the module doc)."""
        removed = 0
        for actor, owner in ((event.blocked_id, event.blocker_id), (event.blocker_id, event.blocked_id)):
            removed += await self._purge(actor, owner)
        log.info(
            "engagement between a blocked pair removed",
            extra={"blocker_id": event.blocker_id, "blocked_id": event.blocked_id, "removed": removed},
        )

    async def _purge(self, actor: int, owner: int) -> int:
        """Removes `actor`'s likes, saves and comments on `owner`'s live posts; how many rows went."""
        removed, token = 0, ""
        while True:
            page = await self._posts.ListPosts(
                post_pb2.ListPostsRequest(parent=f"users/{owner}", page_size=_PAGE, page_token=token),
                timeout=self._timeout,
            )
            if page.posts:
                removed += await self._purge_posts(actor, owner, [post.id for post in page.posts])
            token = page.next_page_token
            if not token:
                return removed

    async def _purge_posts(self, actor: int, owner: int, post_ids: list[int]) -> int:
        async with self._db.unit_of_work() as session:
            await repo.hold_posts(session, post_ids)
            unliked = await repo.remove_likes(session, actor, post_ids)
            unsaved = await repo.remove_saves(session, actor, post_ids)
            erased = await repo.remove_comments_of(session, actor, await repo.comments_by_on(session, actor, post_ids))
            # (likes, comments, saves) each post lost.
            lost = {post_id: [0, 0, 0] for post_id in (*unliked, *erased.removed_by_post, *unsaved)}
            for post_id in unliked:
                lost[post_id][0] += 1
            for post_id, count in erased.removed_by_post.items():
                lost[post_id][1] += count
            for post_id in unsaved:
                lost[post_id][2] += 1
            deltas = {post_id: (-likes_, -comments_, -saves_) for post_id, (likes_, comments_, saves_) in lost.items()}
            await repo.bump_many(session, random.randrange(self._shards), deltas)
            for post_id in unliked:
                await self._outbox.add(
                    session, events_pb2.PostUnliked(post_id=post_id, post_author_id=owner, user_id=actor)
                )
            for comment_id, post_id, reply_ids in erased.announced:
                event = events_pb2.CommentDeleted(
                    comment_id=comment_id, post_id=post_id, author_id=actor, reply_ids=reply_ids
                )
                await self._outbox.add(session, event)
        return len(unliked) + len(unsaved) + erased.rows
