"""The engagement cache in Redis: each post's like, comment and save counts, and each reader's own
likes and saves of recent posts, so a feed page reads its engagement in one Redis round trip instead
of a gRPC call to engagement_svc and a PostgreSQL query.

engagement_svc's tables stay the truth; this is a look-aside cache with leases (the memcache lease
scheme of Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013). Like `timelines`, this package
is a contract between two services, and `mesh` knows nothing of it. Every key it touches:

    key                               written by                               read by
    <ns>:engagement:counts:{day}      feed_svc (a read's lease, then its fill)  feed_svc
    (hash: post id -> "likes,comments,saves,filled_s", or "~token" while a reader leases it;
    day = the post id's UTC day)
                                      engagement_svc (drops the post's field after every commit
                                      that changed its counts)
    <ns>:engagement:viewer:{uid}      feed_svc (lease, then the reader's likes and saves of
    (hash: "since" -> the lowest      posts minted since a window's start)      feed_svc
    post id covered, "t" -> filled_s, engagement_svc (drops the whole key after every commit that
    post id -> 1 liked | 2 saved | 3, changed the reader's likes or saves, and on their erasure)
    "~" -> lease token, "~t" -> its time)

Why it stays exact: a reader that misses leases the field (or key) before asking engagement_svc and
fills it only if its lease is still there; engagement_svc drops the field after its commit, which
removes any lease taken before, so a value read before a change is never stored after it. Answers
are right as of the read (and the writer's own next read sees its write: the drop happens before its
RPC answers). A drop that fails (Redis unreachable from engagement_svc at that moment) is repeated by
feed_svc's engagement consumer from the like, unlike or comment event, at least once and seconds
later; what has no event (a save) stays stale at most until the value's age passes the reader's max
age (FeedSettings), when it is read anew.

A warm read is plain HMGETs; every lease, fill or release (a change that must look first) is one Lua
script on one key, so it runs unchanged on Redis Cluster.

    engagement_cache.store   EngagementCache: reads, leases, fills and drops
"""

from engagement_cache.store import CachedEngagement, EngagementCache, ViewerState

__all__ = ["CachedEngagement", "EngagementCache", "ViewerState"]
