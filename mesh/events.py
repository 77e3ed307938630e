"""The event registry: every event Glimpse publishes, with its subject and its JetStream stream.

This is the one place a subject is spelled. Producers hand `Outbox.add` a message and the subject
comes from the message's type; consumers declare the event types they handle and receive decoded
messages; the stream table is built from this list. Adding an event = one message in
`proto/glimpse/events/v1/events.proto` + one line in `REGISTRY`.

Subjects are relative to the deployment's namespace ("posts.created" is published as
"glimpse.posts.created"); streams likewise ("POSTS" is "GLIMPSE_POSTS").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from glimpse.events.v1 import events_pb2

E = TypeVar("E", bound=Message)


class PoisonMessage(Exception):
    """A message that can never be handled (undecodable, impossible): dead-lettered at once."""


@dataclass(frozen=True)
class EventType(Generic[E]):
    """One kind of event: its protobuf message, its subject and the stream that stores it."""

    message: type[E]
    subject: str
    stream: str

    def decode(self, data: bytes) -> E:
        """The event in `data`; PoisonMessage if the bytes are not this message or lack its ids.

        Every Glimpse event carries an `event_id` stamped by the outbox: a message without one was
        not produced by us (or is truncated), so it is poison rather than an event with zeros.
        """
        try:
            event = self.message.FromString(data)
        except DecodeError as exc:
            raise PoisonMessage(f"not a {self.message.__name__}: {exc}") from exc
        if not getattr(event, "event_id", 0):
            raise PoisonMessage(f"{self.message.__name__} without an event_id")
        return event


POST_CREATED = EventType(events_pb2.PostCreated, "posts.created", "POSTS")
POST_UPDATED = EventType(events_pb2.PostUpdated, "posts.updated", "POSTS")
POST_DELETED = EventType(events_pb2.PostDeleted, "posts.deleted", "POSTS")
USER_FOLLOWED = EventType(events_pb2.UserFollowed, "graph.followed", "GRAPH")
USER_UNFOLLOWED = EventType(events_pb2.UserUnfollowed, "graph.unfollowed", "GRAPH")
FOLLOW_REQUESTED = EventType(events_pb2.FollowRequested, "graph.follow_requested", "GRAPH")
FOLLOW_REQUEST_REMOVED = EventType(events_pb2.FollowRequestRemoved, "graph.follow_request_removed", "GRAPH")
USER_BLOCKED = EventType(events_pb2.UserBlocked, "graph.blocked", "GRAPH")
USER_UNBLOCKED = EventType(events_pb2.UserUnblocked, "graph.unblocked", "GRAPH")
USER_MUTED = EventType(events_pb2.UserMuted, "graph.muted", "GRAPH")
USER_UNMUTED = EventType(events_pb2.UserUnmuted, "graph.unmuted", "GRAPH")
USER_PRIVACY_CHANGED = EventType(events_pb2.UserPrivacyChanged, "graph.privacy_changed", "GRAPH")
USER_DELETED = EventType(events_pb2.UserDeleted, "graph.user_deleted", "GRAPH")
MEDIA_READY = EventType(events_pb2.MediaReady, "media.ready", "MEDIA")
MEDIA_FAILED = EventType(events_pb2.MediaFailed, "media.failed", "MEDIA")
AVATAR_ATTACHED = EventType(events_pb2.AvatarAttached, "media.avatar_attached", "MEDIA")
AVATAR_READY = EventType(events_pb2.AvatarReady, "media.avatar_ready", "MEDIA")
AVATAR_DISCARDED = EventType(events_pb2.AvatarDiscarded, "graph.avatar_discarded", "GRAPH")
POST_LIKED = EventType(events_pb2.PostLiked, "engagement.liked", "ENGAGEMENT")
POST_UNLIKED = EventType(events_pb2.PostUnliked, "engagement.unliked", "ENGAGEMENT")
COMMENT_CREATED = EventType(events_pb2.CommentCreated, "engagement.commented", "ENGAGEMENT")
COMMENT_DELETED = EventType(events_pb2.CommentDeleted, "engagement.comment_deleted", "ENGAGEMENT")
USER_MENTIONED = EventType(events_pb2.UserMentioned, "engagement.mentioned", "ENGAGEMENT")
NOTIFICATION_CHANGED = EventType(events_pb2.NotificationChanged, "notifications.changed", "NOTIFICATIONS")
STORY_CREATED = EventType(events_pb2.StoryCreated, "stories.created", "STORIES")
STORY_DELETED = EventType(events_pb2.StoryDeleted, "stories.deleted", "STORIES")
EXPORT_REQUESTED = EventType(events_pb2.ExportRequested, "exports.requested", "EXPORTS")

REGISTRY: tuple[EventType[Any], ...] = (
    POST_CREATED,
    POST_UPDATED,
    POST_DELETED,
    USER_FOLLOWED,
    USER_UNFOLLOWED,
    FOLLOW_REQUESTED,
    FOLLOW_REQUEST_REMOVED,
    USER_BLOCKED,
    USER_UNBLOCKED,
    USER_MUTED,
    USER_UNMUTED,
    USER_PRIVACY_CHANGED,
    USER_DELETED,
    MEDIA_READY,
    MEDIA_FAILED,
    AVATAR_ATTACHED,
    AVATAR_READY,
    AVATAR_DISCARDED,
    POST_LIKED,
    POST_UNLIKED,
    COMMENT_CREATED,
    COMMENT_DELETED,
    USER_MENTIONED,
    NOTIFICATION_CHANGED,
    STORY_CREATED,
    STORY_DELETED,
    EXPORT_REQUESTED,
)

# Messages that failed every delivery, or could never be handled, or outbox rows no stream would
# store: "deadletter.<consumer durable>" and "deadletter.outbox.<schema>".
DEAD_LETTER_STREAM = "DEADLETTER"
DEAD_LETTER_PREFIX = "deadletter"

_BY_MESSAGE: dict[type[Message], EventType[Any]] = {e.message: e for e in REGISTRY}
_BY_SUBJECT: dict[str, EventType[Any]] = {e.subject: e for e in REGISTRY}
if len(_BY_MESSAGE) != len(REGISTRY) or len(_BY_SUBJECT) != len(REGISTRY):
    raise RuntimeError("mesh.events.REGISTRY lists a message or a subject twice")


def event_type(event: Message) -> EventType[Any]:
    """The registry entry of `event`'s message type; LookupError if it is not a registered event."""
    try:
        return _BY_MESSAGE[type(event)]
    except KeyError:
        raise LookupError(f"{type(event).__name__} is not in mesh.events.REGISTRY") from None


def by_subject(subject: str) -> EventType[Any] | None:
    """The event published on `subject` (relative to the namespace), or None if none is."""
    return _BY_SUBJECT.get(subject)


def stream_table() -> dict[str, tuple[str, ...]]:
    """Stream -> the subjects (relative to the namespace) it stores, dead letters included."""
    table: dict[str, tuple[str, ...]] = {}
    for entry in REGISTRY:
        table[entry.stream] = (*table.get(entry.stream, ()), entry.subject)
    table[DEAD_LETTER_STREAM] = (f"{DEAD_LETTER_PREFIX}.>",)
    return table


def dead_letter_subject(*parts: str) -> str:
    """ "deadletter.<parts...>", e.g. dead_letter_subject("fanout_graph")."""
    return ".".join((DEAD_LETTER_PREFIX, *parts))
