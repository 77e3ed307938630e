"""gRPC client channels between services: one per upstream per process, with keepalive and automatic
retries of UNAVAILABLE for the methods where a repeat is safe.

Why not every method: UNAVAILABLE does not only mean "the call never reached a healthy server".
Services answer it themselves after doing part of the work (the database or the object store went
away mid-request: mesh.db and media_svc.storage raise Unavailable), and a connection can drop after
the server committed. A write repeated blindly after that can happen twice. So every RPC in proto/
is classified below, once, as one of:

- READ: reads only (or refreshes a cache); a repeat changes nothing.
- SETS_STATE: puts one thing into a given state (followed, liked, attached to post P, deleted...);
  a repeat finds it in that state and changes nothing, events included (they are emitted only
  when the state really changed; UpdatePost's `posts.updated` only makes readers drop a cache).
- BY_REQUEST_ID: a creation made idempotent by the request's `request_id` (AIP-155): a repeat with
  the same id returns the first call's result. Every caller sends one: the gateway passes the
  client's Idempotency-Key or mints a uuid4 when there is none. A call without one would be a new
  write per attempt, so internal callers must send one too.
- NEVER: a repeat could write twice or hide the first call's success (RegisterUser would answer
  ALREADY_EXISTS; each CreateUploadGrant mints a new media record). Never retried by the channel;
  the client decides.

Only the first three are in the retry policy; a method not listed (an RPC added without being
classified, grpc.health) is not retried. tests/mesh/test_channels.py fails when an RPC of the
generated contracts is missing here. gRPC still retries transparently a call that never left the
client, which is always safe.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping

import grpc

from mesh.interceptors import ClientTelemetryInterceptor


class Retry(enum.Enum):
    READ = "reads only"
    SETS_STATE = "sets a state; a repeat changes nothing"
    BY_REQUEST_ID = "idempotent by its request_id"
    NEVER = "a repeat could write twice"


# The field a BY_REQUEST_ID method's request carries its idempotency key in (AIP-155).
REQUEST_ID_FIELD = "request_id"

# Every RPC of the contracts, by full method name ("package.Service/Method").
RETRIES: Mapping[str, Retry] = {
    # graph_svc. Sessions are stored (issue 16): logging in and refreshing write, see below.
    "glimpse.graph.v1.GraphService/RegisterUser": Retry.NEVER,
    # Each login is a new session row (issue 16); a repeat would add a second one.
    "glimpse.graph.v1.GraphService/AuthenticateUser": Retry.NEVER,
    # Rotation spends the presented refresh token: a repeat of a call that did arrive would present a
    # spent token, which revokes the whole session as a reuse.
    "glimpse.graph.v1.GraphService/RefreshAccessToken": Retry.NEVER,
    "glimpse.graph.v1.GraphService/ListSessions": Retry.READ,
    "glimpse.graph.v1.GraphService/RevokeSession": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/CheckSessions": Retry.READ,
    # A repeat after the change would be refused (the current password is no longer the old one).
    "glimpse.graph.v1.GraphService/ChangePassword": Retry.NEVER,
    "glimpse.graph.v1.GraphService/DeleteUser": Retry.NEVER,
    "glimpse.graph.v1.GraphService/GetUser": Retry.READ,
    "glimpse.graph.v1.GraphService/BatchGetUsers": Retry.READ,
    "glimpse.graph.v1.GraphService/LookupUser": Retry.READ,
    "glimpse.graph.v1.GraphService/SearchUsers": Retry.READ,
    "glimpse.graph.v1.GraphService/FollowUser": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/UnfollowUser": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/ListFollowers": Retry.READ,
    "glimpse.graph.v1.GraphService/ListFollowing": Retry.READ,
    # A server stream is retried only until its first message arrives (gRPC commits the call then).
    "glimpse.graph.v1.GraphService/StreamFollowerIds": Retry.READ,
    "glimpse.graph.v1.GraphService/ListFolloweeIds": Retry.READ,
    "glimpse.graph.v1.GraphService/GetFollowerCount": Retry.READ,
    "glimpse.graph.v1.GraphService/GetAudience": Retry.READ,
    "glimpse.graph.v1.GraphService/ListCelebrityFollowees": Retry.READ,
    # Privacy and safety: each write puts one relation into a state (requested, approved, blocked,
    # muted, private...) and emits its events only when the state really changed.
    "glimpse.graph.v1.GraphService/UpdateUser": Retry.SETS_STATE,
    # The avatar asked for (or none) is a state: a repeat asks for the same media (or none) again.
    "glimpse.graph.v1.GraphService/SetAvatar": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/DeleteAvatar": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/ListFollowRequests": Retry.READ,
    "glimpse.graph.v1.GraphService/ApproveFollowRequest": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/DenyFollowRequest": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/BlockUser": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/UnblockUser": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/ListBlocks": Retry.READ,
    "glimpse.graph.v1.GraphService/MuteUser": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/UnmuteUser": Retry.SETS_STATE,
    "glimpse.graph.v1.GraphService/ListMutes": Retry.READ,
    "glimpse.graph.v1.GraphService/CheckVisibility": Retry.READ,
    "glimpse.graph.v1.GraphService/GetViewerFilters": Retry.READ,
    "glimpse.graph.v1.GraphService/FilterAudience": Retry.READ,
    # A repeat finds the caller's open report of the same thing and answers it.
    "glimpse.graph.v1.GraphService/CreateReport": Retry.SETS_STATE,
    "glimpse.graph.v1.ModerationService/ListReports": Retry.READ,
    "glimpse.graph.v1.ModerationService/GetReport": Retry.READ,
    # The same resolution and note again changes nothing.
    "glimpse.graph.v1.ModerationService/ResolveReport": Retry.SETS_STATE,
    # post_svc
    "glimpse.post.v1.PostService/CreatePost": Retry.BY_REQUEST_ID,
    "glimpse.post.v1.PostService/GetPost": Retry.READ,
    "glimpse.post.v1.PostService/BatchGetPosts": Retry.READ,
    "glimpse.post.v1.PostService/ListPosts": Retry.READ,
    "glimpse.post.v1.PostService/UpdatePost": Retry.SETS_STATE,
    "glimpse.post.v1.PostService/DeletePost": Retry.SETS_STATE,
    "glimpse.post.v1.PostService/GetTag": Retry.READ,
    "glimpse.post.v1.PostService/ListTagPosts": Retry.READ,
    "glimpse.post.v1.PostService/SearchTags": Retry.READ,
    # media_svc. Attach and detach name the post: a repeat finds the media on (or off) it already.
    "glimpse.media.v1.MediaService/CreateUploadGrant": Retry.NEVER,
    "glimpse.media.v1.MediaService/AttachMedia": Retry.SETS_STATE,
    "glimpse.media.v1.MediaService/DetachMedia": Retry.SETS_STATE,
    # A repeat finds the media attached as the caller's avatar already and returns it.
    "glimpse.media.v1.MediaService/AttachAvatar": Retry.SETS_STATE,
    "glimpse.media.v1.MediaService/BatchGetMedia": Retry.READ,
    # Signs URLs of the caller's own uploads (local signing, nothing stored).
    "glimpse.media.v1.MediaService/BatchGetOriginals": Retry.READ,
    # feed_svc (a missing inbox is rebuilt on read: a cache, the same whoever builds it).
    "glimpse.feed.v1.FeedService/GetHomeFeed": Retry.READ,
    "glimpse.feed.v1.FeedService/BatchGetFeedItems": Retry.READ,
    "glimpse.feed.v1.FeedService/GetExploreFeed": Retry.READ,
    # engagement_svc. Counters move only when a row really changed, so toggles repeat safely.
    "glimpse.engagement.v1.EngagementService/LikePost": Retry.SETS_STATE,
    "glimpse.engagement.v1.EngagementService/UnlikePost": Retry.SETS_STATE,
    "glimpse.engagement.v1.EngagementService/ListLikes": Retry.READ,
    "glimpse.engagement.v1.EngagementService/CreateComment": Retry.BY_REQUEST_ID,
    "glimpse.engagement.v1.EngagementService/ListComments": Retry.READ,
    "glimpse.engagement.v1.EngagementService/ListReplies": Retry.READ,
    "glimpse.engagement.v1.EngagementService/GetComment": Retry.READ,
    "glimpse.engagement.v1.EngagementService/DeleteComment": Retry.SETS_STATE,
    "glimpse.engagement.v1.EngagementService/SavePost": Retry.SETS_STATE,
    "glimpse.engagement.v1.EngagementService/UnsavePost": Retry.SETS_STATE,
    "glimpse.engagement.v1.EngagementService/ListSavedPosts": Retry.READ,
    "glimpse.engagement.v1.EngagementService/BatchGetEngagement": Retry.READ,
    "glimpse.engagement.v1.EngagementService/ListViewerEngagement": Retry.READ,
    # Recomputes counters from the rows: a repeat computes the same values.
    "glimpse.engagement.v1.EngagementService/ReconcileCounts": Retry.SETS_STATE,
    "glimpse.engagement.v1.EngagementService/ListLikesByUser": Retry.READ,
    "glimpse.engagement.v1.EngagementService/ListCommentsByUser": Retry.READ,
    # notification_svc. The read marker only moves forward to the position named, settings to the
    # values named: a repeat changes nothing (and emits nothing).
    "glimpse.notification.v1.NotificationService/ListNotifications": Retry.READ,
    "glimpse.notification.v1.NotificationService/GetUnreadCount": Retry.READ,
    "glimpse.notification.v1.NotificationService/MarkNotificationsRead": Retry.SETS_STATE,
    "glimpse.notification.v1.NotificationService/GetNotificationSettings": Retry.READ,
    "glimpse.notification.v1.NotificationService/UpdateNotificationSettings": Retry.SETS_STATE,
    "glimpse.notification.v1.NotificationService/ListNotificationChanges": Retry.READ,
    "glimpse.notification.v1.NotificationService/WatchNotifications": Retry.READ,
    # story_svc. A view is unique per (story, viewer), a deleted story stays deleted.
    "glimpse.story.v1.StoryService/CreateStory": Retry.BY_REQUEST_ID,
    "glimpse.story.v1.StoryService/GetStoryTray": Retry.READ,
    "glimpse.story.v1.StoryService/ListStories": Retry.READ,
    "glimpse.story.v1.StoryService/ViewStory": Retry.SETS_STATE,
    "glimpse.story.v1.StoryService/ListStoryViewers": Retry.READ,
    "glimpse.story.v1.StoryService/DeleteStory": Retry.SETS_STATE,
    # export_svc. A repeat with the same request_id returns the export the first call created.
    "glimpse.export.v1.ExportService/CreateExport": Retry.BY_REQUEST_ID,
    "glimpse.export.v1.ExportService/GetExport": Retry.READ,
}

RETRIED = frozenset(method for method, retry in RETRIES.items() if retry is not Retry.NEVER)

# Up to 3 attempts within about 0.15 s: long enough to ride out a restarting pod behind the same
# address, short against the callers' deadlines (seconds).
RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def _service_config() -> str:
    names = []
    for method in sorted(RETRIED):
        service, name = method.split("/")
        names.append({"service": service, "method": name})
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}]})


_SERVICE_CONFIG = _service_config()


def open_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to a service inside the mesh (TLS is the platform's job: mesh sidecars),
    retrying UNAVAILABLE for the methods in RETRIED only."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ],
        interceptors=[ClientTelemetryInterceptor()],
    )
