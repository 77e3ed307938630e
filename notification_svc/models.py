"""Tables of the `notifications` schema.

One `inboxes` row per user who ever had a notification or changed a setting: the inbox's change
sequence, its read marker and the types switched off. Every writer of an inbox locks that row first,
so an inbox's changes are serialised and take sequence numbers 1, 2, 3... in commit order (a reader
that has seen sequence n has seen every change before it).

A `notifications` row is one item of an inbox: a group (likes of one post, follows) or a single
activity. Its people are `notification_actors` rows, one per (notification, actor), so the count of
distinct people is exact whatever is redelivered or repeated. A notification whose `actor_count`
fell to 0 is kept as a tombstone (removed): its `sequence` tells reconnecting readers it went.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from glimpse.notification.v1 import notification_pb2
from mesh.outbox import outbox_table

metadata = MetaData(schema="notifications")

# The stored `kind` of a notification is its NotificationType number (one vocabulary, the contract's).
FOLLOW = notification_pb2.NOTIFICATION_TYPE_FOLLOW
FOLLOW_REQUEST = notification_pb2.NOTIFICATION_TYPE_FOLLOW_REQUEST
FOLLOW_ACCEPTED = notification_pb2.NOTIFICATION_TYPE_FOLLOW_ACCEPTED
LIKE = notification_pb2.NOTIFICATION_TYPE_LIKE
COMMENT = notification_pb2.NOTIFICATION_TYPE_COMMENT
REPLY = notification_pb2.NOTIFICATION_TYPE_REPLY
MENTION = notification_pb2.NOTIFICATION_TYPE_MENTION
KINDS = (FOLLOW, FOLLOW_REQUEST, FOLLOW_ACCEPTED, LIKE, COMMENT, REPLY, MENTION)
# Kinds whose activities within GROUP_WINDOW of a group's first one join that group.
GROUPED = frozenset({FOLLOW, LIKE})

inboxes = Table(
    "inboxes",
    metadata,
    Column("recipient_id", BigInteger, primary_key=True, autoincrement=False),
    # The sequence number of the inbox's last change (0: never changed).
    Column("last_sequence", BigInteger, nullable=False, server_default="0"),
    # Notifications whose id is at most this are read.
    Column("read_up_to", BigInteger, nullable=False, server_default="0"),
    # Bit n set: NotificationType n is switched off.
    Column("disabled_kinds", Integer, nullable=False, server_default="0"),
)

notifications = Table(
    "notifications",
    metadata,
    # Time-ordered, minted when the notification is first written; `group_key` is its decimal form.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("recipient_id", BigInteger, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    # What makes a write of the same thing land on the same row: "like:<post>:<window start ms>",
    # "comment:<comment id>", "follow_request:<requester>", ... (repository.natural_key).
    Column("natural_key", Text, nullable=False),
    Column("post_id", BigInteger, nullable=False, server_default="0"),
    Column("comment_id", BigInteger, nullable=False, server_default="0"),
    Column("comment_preview", Text, nullable=False, server_default=""),
    # Live people in it; 0 marks a removed notification (a tombstone).
    Column("actor_count", Integer, nullable=False),
    # Up to 3 live actors, most recent first (kept with every change; rebuilt from the actor rows
    # when one of them leaves).
    Column("recent_actor_ids", ARRAY(BigInteger), nullable=False),
    # The activity id of its most recent live actor: the notification's public `id` and its position.
    Column("latest_id", BigInteger, nullable=False),
    # The inbox sequence number of its last change.
    Column("sequence", BigInteger, nullable=False),
    # When the group's first activity happened: a grouped activity joins it until GROUP_WINDOW later.
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("recipient_id", "natural_key", name="notifications_natural_key"),
)
# The inbox, newest first (the list, the unread count and the read marker's ceiling).
Index(
    "notifications_inbox",
    notifications.c.recipient_id,
    notifications.c.latest_id.desc(),
    postgresql_where=notifications.c.actor_count > 0,
)
# The inbox's changes after a sequence number (real-time replay).
Index("notifications_changes", notifications.c.recipient_id, notifications.c.sequence)
# The open group of a post's likes (or of follows: post 0) in an inbox.
Index(
    "notifications_groups",
    notifications.c.recipient_id,
    notifications.c.kind,
    notifications.c.post_id,
    notifications.c.window_start.desc(),
    postgresql_where=notifications.c.kind.in_(sorted(GROUPED)),
)
# Everything about a deleted post, or a deleted comment, in every inbox.
Index("notifications_by_post", notifications.c.post_id, postgresql_where=notifications.c.post_id != 0)
Index("notifications_by_comment", notifications.c.comment_id, postgresql_where=notifications.c.comment_id != 0)

notification_actors = Table(
    "notification_actors",
    metadata,
    Column("notification_id", BigInteger, nullable=False),
    Column("actor_id", BigInteger, nullable=False),
    # Minted when the actor (last) joined: the notification's id while this is its newest actor.
    Column("activity_id", BigInteger, nullable=False),
    # The id of the last event applied to this row: an older event (redelivered late) changes nothing.
    Column("event_id", BigInteger, nullable=False),
    # False once the activity was undone before being read (the row stays, so a late redelivery of
    # the original event cannot bring it back).
    Column("live", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("notification_id", "actor_id"),
)
# What one person caused, in any inbox (a block removes it).
Index("notification_actors_by_actor", notification_actors.c.actor_id)

# Posts whose `posts.deleted` was handled: their notifications are gone, and an activity on one that
# arrives later (the events travel on other streams) writes nothing.
deleted_posts = Table(
    "deleted_posts",
    metadata,
    Column("post_id", BigInteger, primary_key=True, autoincrement=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
