"""Runs benchmarks: `python -m bench` (all) or `python -m bench NAME ...`."""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "graph_stream": "follower-stream throughput of graph_svc beside an empty gRPC call",
    "renditions": "rendition images/s beside naive Pillow and libvips; the worker's peak RSS on 12-MP and 50-MP photos",
    "avatars": "the square avatar pipeline (320/150 px) per photo beside the post pipeline on the same photos",
    "create_post": "CreatePost p50/p99 at 16 concurrent callers beside an empty gRPC call",
    "fanout": "inbox writes/s for 10k followers beside raw pipelined ZADD; post-to-visible p50/p99 (1k, 10k)",
    "feed_read": "GetHomeFeed rate and p50/p99 beside an empty call; celebrity mix; SQL-join baseline, 1M posts",
    "gateway_feed": "feed read through the gateway beside the same read straight against feed_svc",
    "engagement": "LikePost rate over 2,000 posts and on one hot post (16 shards, 1 row) beside an empty call",
    "db_path": "CPU per write transaction and per read: SQLAlchemy, mesh.db, psycopg alone (the floor)",
    "notifications": "like storm into ONE group (consumer events/s beside floors, rows per like); like -> SSE "
    "p50/p99 at 50/s; idle SSE streams per gateway process and memory per stream",
    "tags": "tag page (ListTagPosts) p50/p99 with 1M posts beside the same page by SQL; tag count, tag search",
    "search": "SearchUsers p50/p99 over 100k users, one- and two-typo queries, beside an exact LookupUser",
    "fanout_privacy": "fan-out of one post to 10k (1k) followers with the privacy filter beside the same handler "
    "before it (1% of followers mute the author, 50 blocks each way) and raw ZADD",
    "feed_filters": "GetHomeFeed for a reader with 50 blocks + 50 mutes beside a reader with none (cost per page, "
    "CPU per page), cached and uncached filters, and with an unpurged inbox",
    "post_view": "BatchGetFeedItems of one post (GET /v1/posts/{id}) p99 at 16 callers with the visibility check "
    "(warm and cold cache) beside the same call without it",
    "stories": "story tray p50/p99 (500 followees, 100 with stories) beside the home feed read; 10,000 views "
    "of one story at 16 callers: exact view_count, rate beside an empty call",
    "session_checks": "the gateway's session check: CheckSessions p50/p99 beside an empty call and GetUser; due "
    "sessions checked/s one per call and batched; per-request cost beside the token check",
    "graph_erasure": "DeleteUser of a user with 5,000 followers and 1,000 followees beside one with none; graph "
    "rows left holding the id and counts off (must be 0)",
    "erasure": "deleting a user with 1,000 posts, 10,000 likes given and 5,000 followers until every service is "
    "done, beside raw DELETEs of the same data; references left (must be 0)",
    "export": "the data export of a user with 1,000 posts (real photos), 10,000 likes and 5,000 followers: wall "
    "time and export_svc's peak RSS beside the same rows by SQL and the same bytes read and written in S3",
    "graph_reads": "CPU per call of graph_svc's hot reads in process (CheckVisibility, GetViewerFilters, "
    "FilterAudience, GetUser, BatchGetUsers, CheckSessions, ListFolloweeIds) beside the same SQL by psycopg alone",
    "ranked_feed": "ranked home feed page beside the chronological page (same readers, same run); explore "
    "pages beside an empty call",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Glimpse benchmarks; each prints its figure beside a floor measured in the same run.",
        epilog="\n".join(f"  {name:<14} {text}" for name, text in BENCHMARKS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], help="benchmarks to run (default: all)")
    names = parser.parse_args().names or list(BENCHMARKS)
    for name in names:
        print(f"== {name}")
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
