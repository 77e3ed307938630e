"""The Redis timeline layout: each user's inbox (home feed) and each author's outbox.

This package is the contract between fanout_svc and feed_svc, like a protobuf message between
services; neither owns the other's code, and `mesh` (the runtime) knows nothing of it. Who owns
which key (every key this package touches):

    key                      written by                                 read by
    <ns>:feed:{uid}          fanout_svc (push, follow backfill/removal)  feed_svc
    (inbox)                  feed_svc (rebuild on a read, TTL refresh)
    <ns>:outbox:{uid}        fanout_svc (new and deleted posts)          fanout_svc, feed_svc
    (outbox)                 either, rebuilding a cold one from post_svc
    <ns>:pulled:{uid}        fanout_svc only: the author posted as a celebrity, so followers
                             pulled those posts; cleared once they are pushed after the author
                             drops under the threshold

Scores are a post's creation time in milliseconds (taken from its id: exact in a float64, unlike the
64-bit id itself). Members are post ids zero-padded to 19 digits, so members with equal scores sort
like the ids, and (score, member) order is exactly id order: pages keyed on a post id never skip or
repeat posts created in the same millisecond.

LIVE (a member at +inf) marks a timeline that was built, even if it holds no posts (Redis drops
empty sets). An inbox without it has expired (its owner has not read for FEED_INBOX_TTL) or never
existed: the fan-out skips it and the next read rebuilds it. Every multi-command change is one Lua
script on one key, so it is atomic and runs unchanged on Redis Cluster (keys carry a hash tag).

    timelines.store      Timelines: the sorted sets and the pulled marker
    timelines.outboxes   OutboxLoader: outboxes read through to post_svc
    timelines.settings   TimelineSettings: caps, TTL and the celebrity threshold both sides share
"""
