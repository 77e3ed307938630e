"""notification_svc's event handlers: one per event type, from graph_svc (follows, follow requests,
blocks), engagement_svc (likes, comments, mentions) and post_svc (deletions).

Each is idempotent (notification_svc.notifier): a redelivered event changes nothing. A graph_svc,
post_svc or engagement_svc that cannot answer raises, so the event is retried (mesh.bus).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf.message import Message

from glimpse.events.v1 import events_pb2
from mesh.events import (
    COMMENT_CREATED,
    COMMENT_DELETED,
    FOLLOW_REQUEST_REMOVED,
    FOLLOW_REQUESTED,
    POST_LIKED,
    POST_UNLIKED,
    USER_BLOCKED,
    USER_FOLLOWED,
    USER_MENTIONED,
    USER_UNFOLLOWED,
    PoisonMessage,
)
from notification_svc.content import ContentDirectory
from notification_svc.models import COMMENT, FOLLOW, FOLLOW_ACCEPTED, FOLLOW_REQUEST, LIKE, MENTION, REPLY
from notification_svc.notifier import Activity, Notifier
from notification_svc.privacy import Privacy

GRAPH_DURABLE = "notification_graph"
ENGAGEMENT_DURABLE = "notification_engagement"
POSTS_DELETED_DURABLE = "notification_posts_deleted"
GRAPH_EVENTS = (USER_FOLLOWED, USER_UNFOLLOWED, FOLLOW_REQUESTED, FOLLOW_REQUEST_REMOVED, USER_BLOCKED)
ENGAGEMENT_EVENTS = (POST_LIKED, POST_UNLIKED, COMMENT_CREATED, COMMENT_DELETED, USER_MENTIONED)


def _at(event: Any) -> dt.datetime:
    """When the event happened (the outbox stamps every event); now for one without a time."""
    if event.HasField("occur_time"):
        return event.occur_time.ToDatetime(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC)


def _require(*ids: int) -> None:
    if any(value <= 0 for value in ids):
        raise PoisonMessage("an event without the ids it must carry")


class ActivityEvents:
    def __init__(self, notifier: Notifier, privacy: Privacy, content: ContentDirectory) -> None:
        self._notifier = notifier
        self._privacy = privacy
        self._content = content
        self._handlers: dict[type[Message], Callable[[Any], Awaitable[None]]] = {
            events_pb2.UserFollowed: self.on_followed,
            events_pb2.UserUnfollowed: self.on_unfollowed,
            events_pb2.FollowRequested: self.on_follow_requested,
            events_pb2.FollowRequestRemoved: self.on_follow_request_removed,
            events_pb2.UserBlocked: self.on_blocked,
            events_pb2.PostLiked: self.on_liked,
            events_pb2.PostUnliked: self.on_unliked,
            events_pb2.CommentCreated: self.on_commented,
            events_pb2.CommentDeleted: self.on_comment_deleted,
            events_pb2.UserMentioned: self.on_mentioned,
            events_pb2.PostDeleted: self.on_post_deleted,
        }

    async def handle(self, event: Message) -> None:
        """Any event of a consumer's list, to its handler below."""
        await self._handlers[type(event)](event)

    async def _tell(self, activity: Activity, post_author_id: int = 0) -> None:
        if activity.actor_id == activity.recipient_id:
            return
        if await self._privacy.may_tell(activity.recipient_id, activity.actor_id, post_author_id):
            await self._notifier.add(activity)

    async def on_followed(self, event: events_pb2.UserFollowed) -> None:
        """`graph.followed`: the followee is told (follows are grouped); an approved request instead
        tells the requester it was accepted, and the request leaves the followee's inbox."""
        _require(event.follower_id, event.followee_id)
        if event.approved_request:
            await self._notifier.retract(event.followee_id, f"follow_request:{event.follower_id}", event.event_id)
            accepted = Activity(event.follower_id, FOLLOW_ACCEPTED, event.followee_id, event.event_id, _at(event))
            await self._tell(accepted)
            return
        await self._tell(Activity(event.followee_id, FOLLOW, event.follower_id, event.event_id, _at(event)))

    async def on_unfollowed(self, event: events_pb2.UserUnfollowed) -> None:
        """`graph.unfollowed`: the follower leaves the followee's follow group if it was not read yet;
        a withdrawn request leaves the followee's inbox."""
        _require(event.follower_id, event.followee_id)
        await self._notifier.undo(Activity(event.followee_id, FOLLOW, event.follower_id, event.event_id, _at(event)))
        await self._notifier.retract(event.followee_id, f"follow_request:{event.follower_id}", event.event_id)

    async def on_follow_request_removed(self, event: events_pb2.FollowRequestRemoved) -> None:
        """`graph.follow_request_removed`: a withdrawn or denied request leaves the target's inbox."""
        _require(event.requester_id, event.target_id)
        await self._notifier.retract(event.target_id, f"follow_request:{event.requester_id}", event.event_id)

    async def on_follow_requested(self, event: events_pb2.FollowRequested) -> None:
        """`graph.follow_requested`: the private account is told who asked."""
        _require(event.requester_id, event.target_id)
        await self._tell(Activity(event.target_id, FOLLOW_REQUEST, event.requester_id, event.event_id, _at(event)))

    async def on_blocked(self, event: events_pb2.UserBlocked) -> None:
        """`graph.blocked`: what either caused in the other's inbox goes, read or not."""
        _require(event.blocker_id, event.blocked_id)
        self._privacy.forget(event.blocker_id, event.blocked_id)
        await self._notifier.forget_between(event.blocker_id, event.blocked_id, event.event_id)

    async def on_liked(self, event: events_pb2.PostLiked) -> None:
        """`engagement.liked`: the post's author is told (likes of a post are grouped)."""
        _require(event.post_id, event.post_author_id, event.user_id)
        like = Activity(event.post_author_id, LIKE, event.user_id, event.event_id, _at(event), post_id=event.post_id)
        await self._tell(like, event.post_author_id)

    async def on_unliked(self, event: events_pb2.PostUnliked) -> None:
        """`engagement.unliked`: the liker leaves the group if the author has not read their like yet."""
        _require(event.post_id, event.post_author_id, event.user_id)
        unlike = Activity(event.post_author_id, LIKE, event.user_id, event.event_id, _at(event), post_id=event.post_id)
        await self._notifier.undo(unlike)

    async def on_commented(self, event: events_pb2.CommentCreated) -> None:
        """`engagement.commented`: a reply tells the author of what it answered; any comment tells the
        post's author (once, as a reply if they were answered)."""
        _require(event.comment_id, event.post_id, event.post_author_id, event.author_id)

        def activity(recipient_id: int, kind: int) -> Activity:
            return Activity(
                recipient_id,
                kind,
                event.author_id,
                event.event_id,
                _at(event),
                post_id=event.post_id,
                comment_id=event.comment_id,
                comment_preview=event.text_preview,
            )

        if event.reply_to_author_id:
            await self._tell(activity(event.reply_to_author_id, REPLY), event.post_author_id)
        if event.post_author_id != event.reply_to_author_id:
            await self._tell(activity(event.post_author_id, COMMENT), event.post_author_id)

    async def on_comment_deleted(self, event: events_pb2.CommentDeleted) -> None:
        """`engagement.comment_deleted`: the notifications about the comment and its replies go."""
        _require(event.comment_id)
        await self._notifier.forget_comments([event.comment_id, *event.reply_ids], event.event_id)

    async def on_mentioned(self, event: events_pb2.UserMentioned) -> None:
        """`engagement.mentioned`: the user is told where, if they may see the post. A mention in a
        comment that was deleted meanwhile, or on a post that is gone, tells nobody."""
        _require(event.mentioned_user_id, event.actor_id, event.post_id)
        preview = ""
        post_author = event.actor_id  # a caption's mention is made by the post's author
        if event.comment_id:
            comment = await self._content.comment(event.comment_id)
            author = await self._content.author_of(event.post_id)
            if comment is None or author is None:
                return
            preview, post_author = comment.preview, author
        mention = Activity(
            event.mentioned_user_id,
            MENTION,
            event.actor_id,
            event.event_id,
            _at(event),
            post_id=event.post_id,
            comment_id=event.comment_id,
            comment_preview=preview,
        )
        await self._tell(mention, post_author)

    async def on_post_deleted(self, event: events_pb2.PostDeleted) -> None:
        """`posts.deleted`: every notification about the post goes, and later activity on it is ignored."""
        _require(event.post_id)
        await self._notifier.forget_post(event.post_id, event.event_id)
