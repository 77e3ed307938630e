"""Discovery: hashtag pages (a tag's count and its posts) and tag search. post_svc owns tags and finds
a tag's posts; feed_svc renders them (BatchGetFeedItems), exactly as the feed does. User search is
`GET /v1/search/users` (gateway/routes/accounts.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.errors import client_field_names
from gateway.fields import PageSize, PageToken
from gateway.render import feed_item_json, to_json
from gateway.resources import PostPage, Tag, TagPage, error_responses
from gateway.upstream import Services
from glimpse.feed.v1 import feed_pb2
from glimpse.post.v1 import post_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["discovery"])

TagName = Annotated[
    str,
    Path(
        description="A hashtag, '#' optional (percent-encoded as %23): letters, digits, marks and '_' of any "
        "script, at most 100 once normalised. Any case or Unicode form names the same tag: Café, café, CAFÉ "
        "and a decomposed cafe\u0301 are one. 400 (field `tag`) if it is not a hashtag.",
        examples=["café"],
    ),
]


@router.get(
    "/v1/tags/{tag}",
    response_model=Tag,
    summary="A hashtag and its post count",
    response_description="The tag in its one spelling and how many live posts carry it.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def get_tag(tag: TagName, caller: CallerId, services: Services) -> dict[str, Any]:
    """Every well-formed tag has a page: a tag nobody used has 0 posts. The count is of every live post
    carrying the tag, private accounts' included (their posts are left out of the tag's page for those
    who may not see them, not of its count).

    How a tag is normalised (in captions, here and in search alike): Unicode NFKC, then case folding.
    So full-width letters and ligatures fold (a full-width #GLIMPSE is glimpse, #ﬁsh is fish), #Straße is
    strasse, and #İstanbul is i̇stanbul (an i with a combining dot: case folding is not
    Turkish-aware, so istanbul is another tag). A tag may be all digits (#2026). In a caption a tag
    starts at '#' and ends at the first character that cannot be in one ("end.#café." tags café)."""
    request = post_pb2.GetTagRequest(tag=tag)
    return to_json(await services.post.GetTag(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.get(
    "/v1/tags/{tag}/posts",
    response_model=PostPage,
    summary="List a hashtag's posts",
    response_description="One page of posts carrying the tag, newest first, each as in the feed.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_tag_posts(
    tag: TagName, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Only what the caller may see: posts of private accounts it does not follow, and of users blocked
    either way, are left out, so a page may hold fewer than `page_size` posts (even none) with a
    `next_page_token`: keep following it until it is empty. 400 for a malformed tag or `page_token`."""
    metadata = as_caller(caller)
    request = post_pb2.ListTagPostsRequest(tag=tag, page_size=page_size, page_token=page_token)
    response = await services.post.ListTagPosts(request, timeout=services.timeout, metadata=metadata)
    items: list[dict[str, Any]] = []
    if response.posts:
        render = feed_pb2.BatchGetFeedItemsRequest(post_ids=[post.id for post in response.posts])
        rendered = await services.feed.BatchGetFeedItems(render, timeout=services.timeout, metadata=metadata)
        items = [feed_item_json(item) for item in rendered.items]
    return {"items": items, "next_page_token": response.next_page_token}


@router.get(
    "/v1/search/tags",
    response_model=TagPage,
    summary="Search hashtags by prefix",
    response_description="Tags in use starting with `q`, most used first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads, Depends(client_field_names(query="q"))],
)
async def search_tags(
    caller: CallerId,
    services: Services,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="The start of a hashtag, '#' optional, in any case or Unicode form (#Caf finds café).",
        ),
    ],
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """Tags whose posts were all deleted or edited away are left out. Counts change while you page: a
    tag whose count moves between two pages may be shown twice or not at all. 400 if `q` cannot start a
    hashtag, or for a malformed `page_token`."""
    request = post_pb2.SearchTagsRequest(query=q, page_size=page_size, page_token=page_token)
    response = await services.post.SearchTags(request, timeout=services.timeout, metadata=as_caller(caller))
    return {"items": [to_json(tag) for tag in response.tags], "next_page_token": response.next_page_token}
