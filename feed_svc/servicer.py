"""FeedService gRPC servicer: converts between protobuf and the domain, nothing else.

Responses leave as bytes assembled from the items' cached encodings (feed_svc.encoding), so the
service is registered by `add_to_server` with no response serializer: gRPC sends the bytes as they
are. Clients see the ordinary messages of feed.proto.
"""

from __future__ import annotations

import grpc

from feed_svc import encoding
from feed_svc.explore import ExploreFeed
from feed_svc.hydration import RenderedPage
from feed_svc.service import FeedService
from glimpse.feed.v1 import feed_pb2
from mesh.errors import invalid_field
from mesh.identity import caller_id, optional_caller_id

SERVICE = feed_pb2.DESCRIPTOR.services_by_name["FeedService"]


class FeedServicer:
    def __init__(self, service: FeedService, explore: ExploreFeed) -> None:
        self._service = service
        self._explore = explore

    async def GetHomeFeed(self, request: feed_pb2.GetHomeFeedRequest, context: grpc.aio.ServicerContext) -> bytes:
        """A GetHomeFeedResponse, encoded."""
        order = request.order
        if order == feed_pb2.FEED_ORDER_RANKED:
            page = await self._service.ranked_home_feed(caller_id(context), request.page_size, request.page_token)
        elif order in (feed_pb2.FEED_ORDER_UNSPECIFIED, feed_pb2.FEED_ORDER_CHRONOLOGICAL):
            page = await self._service.home_feed(caller_id(context), request.page_size, request.page_token)
        else:
            raise invalid_field(
                "order", f"unknown FeedOrder {order}; use FEED_ORDER_CHRONOLOGICAL or FEED_ORDER_RANKED"
            )
        return _encoded(page)

    async def GetExploreFeed(self, request: feed_pb2.GetExploreFeedRequest, context: grpc.aio.ServicerContext) -> bytes:
        """A GetExploreFeedResponse, encoded."""
        return _encoded(await self._explore.page(caller_id(context), request.page_size, request.page_token))

    async def BatchGetFeedItems(
        self, request: feed_pb2.BatchGetFeedItemsRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """A BatchGetFeedItemsResponse, encoded."""
        page = await self._service.feed_items(request.post_ids, optional_caller_id(context), fresh=request.fresh)
        return _encoded(page)


def _encoded(page: RenderedPage) -> bytes:
    engagement = page.engagement
    return encoding.items_response(
        [(item.encoded, engagement.get(item.post_id)) for item in page.items], page.next_page_token
    )


def add_to_server(servicer: FeedServicer, server: grpc.aio.Server) -> None:
    """Serves every FeedService method of `servicer` (as the generated add_FeedServiceServicer_to_server
    does) with requests parsed as usual and the methods' bytes sent unchanged."""
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=getattr(feed_pb2, method.input_type.name).FromString,
        )
        for method in SERVICE.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
