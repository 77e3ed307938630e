"""The home feed of the signed-in user."""

from __future__ import annotations

from fastapi import APIRouter, Response

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import PageSize, PageToken
from gateway.render import feed_page_body
from gateway.resources import FeedPage, error_responses
from gateway.upstream import Services
from glimpse.feed.v1 import feed_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["feed"])


@router.get(
    "/v1/feed",
    # Documents the body; the handler answers with bytes FastAPI neither validates nor encodes again.
    response_model=FeedPage,
    summary="Read the home feed",
    response_description="One page of posts from the people you follow and yourself, newest first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def home_feed(
    caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> Response:
    """Pages stay exact while new posts arrive (no duplicates, no gaps). 400 for a malformed `page_token`."""
    request = feed_pb2.GetHomeFeedRequest(page_size=page_size, page_token=page_token)
    response = await services.feed.GetHomeFeed(request, timeout=services.timeout, metadata=as_caller(caller))
    return Response(feed_page_body(response), media_type="application/json")
