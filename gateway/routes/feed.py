"""The home feed of the signed-in user (newest first or ranked), and explore."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import PageSize, PageToken
from gateway.render import feed_page_body
from gateway.resources import FeedPage, Post, Resource, error_responses
from gateway.upstream import Services
from glimpse.feed.v1 import feed_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["feed"])

_ORDERS = {"chronological": feed_pb2.FEED_ORDER_CHRONOLOGICAL, "ranked": feed_pb2.FEED_ORDER_RANKED}

Order = Annotated[
    Literal["chronological", "ranked"],
    Query(
        description="`chronological` (the default): newest first. `ranked`: by the score described above. "
        "A page token works only with the order it was issued for. 400 (field `order`) for anything else."
    ),
]

_RANKED = """Pages stay exact while new posts and likes arrive (no duplicates, no gaps). 400 for a
malformed `page_token` or an unknown `order`.

**`order=ranked`** scores the newest 200 posts of the feed (the people you follow, and yourself):

    score = (1 + ln(1 + likes + 2 comments + 3 saves) + 2 ln(1 + affinity)) * 2^(-age_hours / 6)

- *Engagement* with diminishing returns (ln(1 + x)): the first likes matter, the thousandth barely,
  so one viral post cannot bury the rest. A comment takes more effort than a like and a save means
  "I want this again", hence 2 and 3 likes' worth. (A post's saves are counted for this score only:
  nobody is shown them, and who saved a post stays private to each saver.)
- *Affinity*: your own likes (1) and comments (2) on the author's posts, each halving in weight every
  7 days. It weighs twice engagement: what you keep engaging with predicts what you want better than
  what everyone else likes.
- *Recency*: everything halves every 6 hours. One like is worth being about 4.5 hours newer, a
  hundred likes about 15 hours, so the feed still reads mostly newest first.
- Equal scores are ordered by post, newest first. Then no more than two posts in a row are by the
  same author (the next best post by someone else moves up), unless nobody else is left.

The ranking of a page sequence is frozen when its first page is read: later pages never repeat or
skip a post while scores change (new posts and likes show up when you start again without
`page_token`). It is kept for 15 minutes: a `page_token` older than that is a 400 with reason
`PAGE_TOKEN_EXPIRED`."""


@router.get(
    "/v1/feed",
    # Documents the body; the handler answers with bytes FastAPI neither validates nor encodes again.
    response_model=FeedPage,
    summary="Read the home feed",
    description=_RANKED,
    response_description="One page of posts from the people you follow and yourself, newest first or ranked.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def home_feed(
    caller: CallerId,
    services: Services,
    page_size: PageSize = 0,
    page_token: PageToken = "",
    order: Order = "chronological",
) -> Response:
    request = feed_pb2.GetHomeFeedRequest(page_size=page_size, page_token=page_token, order=_ORDERS[order])
    response = await services.feed.GetHomeFeed(request, timeout=services.timeout, metadata=as_caller(caller))
    return Response(feed_page_body(response), media_type="application/json")


class ExplorePage(Resource):
    items: list[Post] = Field(description="Best first: posts gaining likes and comments fastest right now.")
    next_page_token: str = Field(
        description="Pass as `page_token` for the next page; empty at the end. Stable while scores change, "
        "for 15 minutes (then 400, reason `PAGE_TOKEN_EXPIRED`: start again without it)."
    )


@router.get(
    "/v1/explore",
    response_model=ExplorePage,
    tags=["discovery"],
    summary="Explore trending posts",
    response_description="One page of recent public posts by people you do not follow, trending first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def explore(
    caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> Response:
    """Posts of the last 48 hours ranked by engagement velocity: every like by someone other than the
    author adds 1 and every comment 2, each halving in weight every 2 hours (the half-life of Mastodon's
    trending posts), so a post that is gaining likes now outranks one that gathered more yesterday. A post
    needs 5 such interactions (the default) before it shows (one like never makes a post trend). Left out: your own
    posts, people you follow (they are in your home feed), people you block, who block you or whom you
    mute, and private accounts; at most 2 posts per author in a whole page sequence. The ranking is frozen
    when the first page is read (pages never repeat or skip a post while likes arrive) and kept for 15
    minutes; blocks, mutes, privacy and deletions are checked again on every page. 400 for a malformed
    or expired `page_token`."""
    request = feed_pb2.GetExploreFeedRequest(page_size=page_size, page_token=page_token)
    response = await services.feed.GetExploreFeed(request, timeout=services.timeout, metadata=as_caller(caller))
    return Response(feed_page_body(response), media_type="application/json")
