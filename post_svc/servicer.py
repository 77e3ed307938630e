"""PostService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

import grpc

from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.identity import caller_id, optional_caller_id
from mesh.names import parse_user_name
from post_svc.captions import check_location
from post_svc.repository import PostRecord
from post_svc.service import PostService
from post_svc.tag_repository import TagRecord
from post_svc.tags import TagService


def post_message(post: PostRecord) -> post_pb2.Post:
    message = post_pb2.Post(
        id=post.id,
        author_id=post.author_id,
        caption=post.caption,
        hashtags=post.hashtags,
        media_ids=post.media_ids,
        state=post_pb2.POST_STATE_DELETED if post.deleted else post_pb2.POST_STATE_ACTIVE,
    )
    if post.location is not None:
        message.location.CopyFrom(
            post_pb2.Location(
                name=post.location.name, latitude=post.location.latitude, longitude=post.location.longitude
            )
        )
    message.create_time.FromDatetime(post.created_at)
    message.update_time.FromDatetime(post.updated_at)
    return message


def tag_message(tag: TagRecord) -> post_pb2.Tag:
    return post_pb2.Tag(name=tag.name, post_count=tag.post_count)


class PostServicer(post_pb2_grpc.PostServiceServicer):
    def __init__(self, service: PostService, tags: TagService) -> None:
        self._service = service
        self._tags = tags

    async def CreatePost(self, request: post_pb2.CreatePostRequest, context: grpc.aio.ServicerContext) -> post_pb2.Post:
        location = check_location(request.location.name, request.location.latitude, request.location.longitude)
        post = await self._service.create(
            caller_id(context), request.caption, list(request.media_ids), location, request.request_id
        )
        return post_message(post)

    async def GetPost(self, request: post_pb2.GetPostRequest, context: grpc.aio.ServicerContext) -> post_pb2.Post:
        return post_message(await self._service.get(request.post_id, optional_caller_id(context)))

    async def BatchGetPosts(
        self, request: post_pb2.BatchGetPostsRequest, context: grpc.aio.ServicerContext
    ) -> post_pb2.BatchGetPostsResponse:
        posts = await self._service.batch_get(list(request.post_ids), optional_caller_id(context))
        return post_pb2.BatchGetPostsResponse(posts=[post_message(p) for p in posts])

    async def ListPosts(
        self, request: post_pb2.ListPostsRequest, context: grpc.aio.ServicerContext
    ) -> post_pb2.ListPostsResponse:
        author_id = parse_user_name(request.parent)
        page = await self._service.list_by_author(
            author_id, optional_caller_id(context), request.page_size, request.page_token
        )
        return post_pb2.ListPostsResponse(
            posts=[post_message(p) for p in page.items], next_page_token=page.next_page_token
        )

    async def UpdatePost(self, request: post_pb2.UpdatePostRequest, context: grpc.aio.ServicerContext) -> post_pb2.Post:
        post = await self._service.update_caption(
            caller_id(context), request.post.id, request.post.caption, list(request.update_mask.paths)
        )
        return post_message(post)

    async def DeletePost(
        self, request: post_pb2.DeletePostRequest, context: grpc.aio.ServicerContext
    ) -> post_pb2.DeletePostResponse:
        await self._service.delete(caller_id(context), request.post_id)
        return post_pb2.DeletePostResponse()

    async def GetTag(self, request: post_pb2.GetTagRequest, context: grpc.aio.ServicerContext) -> post_pb2.Tag:
        return tag_message(await self._tags.get(request.tag))

    async def ListTagPosts(
        self, request: post_pb2.ListTagPostsRequest, context: grpc.aio.ServicerContext
    ) -> post_pb2.ListTagPostsResponse:
        page = await self._tags.list_posts(
            request.tag, optional_caller_id(context), request.page_size, request.page_token
        )
        return post_pb2.ListTagPostsResponse(
            posts=[post_message(p) for p in page.items], next_page_token=page.next_page_token
        )

    async def SearchTags(
        self, request: post_pb2.SearchTagsRequest, context: grpc.aio.ServicerContext
    ) -> post_pb2.SearchTagsResponse:
        page = await self._tags.search(request.query, request.page_size, request.page_token)
        return post_pb2.SearchTagsResponse(
            tags=[tag_message(t) for t in page.items], next_page_token=page.next_page_token
        )
