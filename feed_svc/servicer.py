"""FeedService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

import grpc

from feed_svc.service import FeedService
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from mesh.identity import caller_id, optional_caller_id


class FeedServicer(feed_pb2_grpc.FeedServiceServicer):
    def __init__(self, service: FeedService) -> None:
        self._service = service

    async def GetHomeFeed(
        self, request: feed_pb2.GetHomeFeedRequest, context: grpc.aio.ServicerContext
    ) -> feed_pb2.GetHomeFeedResponse:
        page = await self._service.home_feed(caller_id(context), request.page_size, request.page_token)
        return feed_pb2.GetHomeFeedResponse(items=page.items, next_page_token=page.next_page_token)

    async def BatchGetFeedItems(
        self, request: feed_pb2.BatchGetFeedItemsRequest, context: grpc.aio.ServicerContext
    ) -> feed_pb2.BatchGetFeedItemsResponse:
        items = await self._service.feed_items(request.post_ids, optional_caller_id(context), fresh=request.fresh)
        return feed_pb2.BatchGetFeedItemsResponse(items=items)
