"""engagement_svc's event handlers: one per event type it consumes (both from post_svc)."""

from __future__ import annotations

import logging

from engagement_svc import repository as repo
from engagement_svc.mentions import MentionResolver, mention_events
from engagement_svc.posts import PostDirectory
from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.events import PoisonMessage
from mesh.outbox import Outbox
from usertext import MENTIONS_MAX, normalize_username

log = logging.getLogger("engagement_svc.consumers")

POSTS_DELETED_DURABLE = "engagement_posts_deleted"
POSTS_CREATED_DURABLE = "engagement_posts_created"


class PostEvents:
    def __init__(self, db: Database, outbox: Outbox, posts: PostDirectory, mentions: MentionResolver) -> None:
        self._db = db
        self._outbox = outbox
        self._posts = posts
        self._mentions = mentions

    async def on_post_deleted(self, event: events_pb2.PostDeleted) -> None:
        """`posts.deleted`: the post's likes, comments, saves and counts go with it, and it is recorded
        as deleted so that writes arriving later are refused. Writes in flight finish first (the
        post's exclusive lock). Idempotent: a redelivery removes nothing more."""
        if event.post_id <= 0:
            raise PoisonMessage("PostDeleted without a post_id")
        self._posts.forget(event.post_id)
        async with self._db.unit_of_work() as session:
            await repo.hold_post(session, event.post_id, exclusive=True)
            purged = await repo.purge(session, event.post_id)
        log.info(
            "deleted post purged",
            extra={"post_id": event.post_id, "likes": purged.likes, "comments": purged.comments, "saves": purged.saves},
        )

    async def on_post_created(self, event: events_pb2.PostCreated) -> None:
        """`posts.created`: one `engagement.mentioned` per existing user the caption @mentions (not the
        author), each once even if the event is delivered again. graph_svc being unreachable raises,
        so the event is retried (mesh.bus)."""
        if event.post_id <= 0 or event.author_id <= 0:
            raise PoisonMessage("PostCreated without post_id or author_id")
        # Normalised again: the event comes from another service, maybe an older or newer release.
        usernames = list(dict.fromkeys(n for raw in event.mentioned_usernames if (n := normalize_username(raw))))
        if not usernames:
            return
        user_ids = await self._mentions.user_ids(usernames[:MENTIONS_MAX], actor_id=event.author_id)
        events = mention_events(user_ids, actor_id=event.author_id, post_id=event.post_id)
        async with self._db.unit_of_work() as session:
            await repo.hold_post(session, event.post_id)
            if await repo.is_deleted(session, event.post_id):
                return
            told = set(await repo.add_caption_mentions(session, event.post_id, [e.mentioned_user_id for e in events]))
            for mention in events:
                if mention.mentioned_user_id in told:
                    await self._outbox.add(session, mention)
