"""Hashtags through a real PostService stub: one spelling of a tag, exact counts that follow creates,
caption edits and deletes, tag pages newest first (across equal timestamps, and without what the
caller may not see), and tags by prefix, most used first."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from glimpse.graph.v1 import graph_pb2
from glimpse.post.v1 import post_pb2
from mesh.db import Database
from mesh.errors import InvalidArgument
from mesh.ids import IdGenerator
from mesh.runtime import lease_id_shard
from post_svc import repository as repo
from post_svc import tag_repository as tag_repo
from post_svc.captions import tag_named
from post_svc.repository import PostRecord
from post_svc.tags import SCAN_ROUNDS, scan_size
from tests.conftest import Account, Stubs
from tests.feed_svc.actions import create_post, delete_post, follow
from tests.graph_svc.conftest import refused

MakeAccount = Callable[[], Awaitable[Account]]
Upload = Callable[[Account], Awaitable[int]]


def unique_tag(stem: str = "t") -> str:
    return f"{stem}{uuid.uuid4().hex[:10]}"


# What the tags are named by -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["café", "Café", "CAFÉ", "#Café", " #café ", "cafe\u0301", "#CAFE\u0301", "\uff03\uff23\uff41\uff46\u00e9"],
)
def test_every_spelling_of_a_tag_names_the_one_tag(raw):
    assert tag_named(raw, "tag") == "café"


def test_scripts_with_combining_marks_stay_whole():
    assert tag_named("#हिन्दी", "tag") == "हिन्दी"
    assert tag_named("தமிழ்", "tag") == "தமிழ்"


@pytest.mark.parametrize("raw", ["", "#", "##café", "not-a-tag", "two words", "café!", "x" * 101])
def test_what_is_not_a_tag_is_invalid_naming_the_field(raw):
    with pytest.raises(InvalidArgument) as caught:
        tag_named(raw, "tag")
    assert list(caught.value.fields) == ["tag"]
    assert "must be a hashtag" in caught.value.fields["tag"]


# Counts ------------------------------------------------------------------------------------------


async def count_of(stubs: Stubs, tag: str) -> int:
    return (await stubs.post.GetTag(post_pb2.GetTagRequest(tag=tag))).post_count


async def edit(stubs: Stubs, author: Account, post_id: int, caption: str) -> None:
    request = post_pb2.UpdatePostRequest(
        post=post_pb2.Post(id=post_id, caption=caption), update_mask=FieldMask(paths=["caption"])
    )
    await stubs.post.UpdatePost(request, metadata=author.metadata)


async def test_counts_follow_creates_caption_edits_and_deletes(stubs, make_account, upload_photo: Upload):
    author = await make_account()
    one, two, three = unique_tag(), unique_tag(), unique_tag()
    first = await create_post(stubs, upload_photo, author, caption=f"#{one.upper()} and #{two}, #{one} again")
    second = await create_post(stubs, upload_photo, author, caption=f"#{one}")
    assert [await count_of(stubs, t) for t in (one, two, three)] == [2, 1, 0]
    # The first post leaves `one`, keeps `two` (in another case) and takes `three`.
    await edit(stubs, author, first, f"#{two.upper()} #{three}")
    assert [await count_of(stubs, t) for t in (one, two, three)] == [1, 1, 1]
    # The same tags again, spelt otherwise: nothing moves.
    await edit(stubs, author, first, f"now #{three.upper()} then #{two}")
    assert [await count_of(stubs, t) for t in (one, two, three)] == [1, 1, 1]
    await delete_post(stubs, author, second)
    await delete_post(stubs, author, second)  # a no-op the second time
    assert [await count_of(stubs, t) for t in (one, two, three)] == [0, 1, 1]
    await delete_post(stubs, author, first)
    assert [await count_of(stubs, t) for t in (one, two, three)] == [0, 0, 0]
    # A tag whose posts are gone has an empty page and is left out of search.
    page = await stubs.post.ListTagPosts(post_pb2.ListTagPostsRequest(tag=one), metadata=author.metadata)
    assert list(page.posts) == [] and page.next_page_token == ""
    search = await stubs.post.SearchTags(post_pb2.SearchTagsRequest(query=one))
    assert list(search.tags) == []


async def test_a_tag_nobody_used_has_a_page_with_no_posts(stubs):
    tag = unique_tag("Never")
    found = await stubs.post.GetTag(post_pb2.GetTagRequest(tag=f"#{tag}"))
    assert (found.name, found.post_count) == (tag.lower(), 0)


# Tag pages ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.dispose()


@dataclass
class Writer:
    """Writes tagged posts straight into post_svc's tables (repository functions, one unit of work
    each), as CreatePost's unit of work does, without photos: for pages of many posts."""

    db: Database
    ids: IdGenerator

    async def post(self, author: Account, tags: list[str], at: dt.datetime | None = None) -> int:
        moment = at or dt.datetime.now(dt.UTC)
        record = PostRecord(
            id=self.ids.next_id(),
            author_id=author.id,
            caption=" ".join(f"#{t}" for t in tags),
            hashtags=tags,
            location=None,
            media_ids=[1],
            deleted=False,
            created_at=moment,
            updated_at=moment,
        )
        async with self.db.unit_of_work() as session:
            assert await repo.insert_post(session, record)
            await tag_repo.retag_post(session, record.id, [], tags)
        return record.id

    async def posts(self, author: Account, tags: list[str], n: int) -> list[int]:
        return [await self.post(author, tags) for _ in range(n)]


@pytest.fixture(scope="module")
async def writer(db: Database) -> Writer:
    return Writer(db, IdGenerator(await lease_id_shard(db)))


async def tag_pages(stubs: Stubs, tag: str, viewer: Account, size: int) -> list[list[int]]:
    """Every page of the tag as `viewer` reads it, following the tokens."""
    pages, token = [], ""
    while True:
        request = post_pb2.ListTagPostsRequest(tag=tag, page_size=size, page_token=token)
        page = await stubs.post.ListTagPosts(request, metadata=viewer.metadata)
        pages.append([post.id for post in page.posts])
        token = page.next_page_token
        if not token:
            return pages


async def test_a_tag_page_is_newest_first_across_equal_timestamps(stubs, make_account, writer: Writer):
    author, reader = await make_account(), await make_account()
    tag = unique_tag()
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    posted = [await writer.post(author, [tag], at=moment) for _ in range(5)]
    pages = await tag_pages(stubs, tag, reader, size=2)
    assert pages == [sorted(posted, reverse=True)[i : i + 2] for i in (0, 2, 4)]
    page = await stubs.post.ListTagPosts(post_pb2.ListTagPostsRequest(tag=tag.upper()), metadata=reader.metadata)
    assert {post.create_time.ToDatetime(dt.UTC) for post in page.posts} == {moment}
    assert all(tag in post.hashtags for post in page.posts)


async def test_an_exactly_full_last_page_has_no_token(stubs, make_account, writer: Writer):
    author = await make_account()
    tag = unique_tag()
    posted = await writer.posts(author, [tag], 4)
    assert await tag_pages(stubs, tag, author, size=2) == [posted[:1:-1], posted[1::-1]]


async def make_private(stubs: Stubs, account: Account) -> None:
    request = graph_pb2.UpdateUserRequest(
        user=graph_pb2.User(is_private=True), update_mask=FieldMask(paths=["is_private"])
    )
    assert (await stubs.graph.UpdateUser(request, metadata=account.metadata)).is_private


async def test_posts_a_viewer_may_not_see_are_left_out(stubs, make_account, writer: Writer):
    public, private, blocker, stranger, follower = [await make_account() for _ in range(5)]
    await make_private(stubs, private)
    await follow(stubs, follower, private)
    approve = graph_pb2.ApproveFollowRequestRequest(requester_id=follower.id)
    await stubs.graph.ApproveFollowRequest(approve, metadata=private.metadata)
    block = graph_pb2.BlockUserRequest(target_user_id=stranger.id)
    await stubs.graph.BlockUser(block, metadata=blocker.metadata)
    tag = unique_tag()
    by_public = await writer.post(public, [tag])
    by_private = await writer.post(private, [tag])
    by_blocker = await writer.post(blocker, [tag])

    def seen(pages: list[list[int]]) -> list[int]:
        return [post for page in pages for post in page]

    assert seen(await tag_pages(stubs, tag, stranger, size=20)) == [by_public]
    assert seen(await tag_pages(stubs, tag, follower, size=20)) == [by_blocker, by_private, by_public]
    # Each author sees its own posts; the blocker does not follow the private account either.
    assert seen(await tag_pages(stubs, tag, blocker, size=20)) == [by_blocker, by_public]
    assert seen(await tag_pages(stubs, tag, private, size=20)) == [by_blocker, by_private, by_public]
    assert await count_of(stubs, tag) == 3  # the count is of every live post


async def test_a_long_run_of_hidden_posts_pages_on_without_ending_early(stubs, make_account, writer: Writer):
    """A page reads at most SCAN_ROUNDS batches: past that it answers short (here empty) with a token
    that goes on below what it read, and the visible post beyond is still reached."""
    public, private, stranger = [await make_account() for _ in range(3)]
    await make_private(stubs, private)
    tag = unique_tag()
    oldest = await writer.post(public, [tag])
    size = 2
    hidden = await writer.posts(private, [tag], sum(scan_size(size, r) for r in range(SCAN_ROUNDS)) + 5)
    pages = await tag_pages(stubs, tag, stranger, size=size)
    assert pages[0] == [] and pages[-1] == [oldest]
    assert [post for page in pages for post in page] == [oldest]
    assert [post for page in await tag_pages(stubs, tag, private, size=50) for post in page] == [
        *reversed(hidden),
        oldest,
    ]


# Search ------------------------------------------------------------------------------------------


async def test_tags_by_prefix_most_used_first(stubs, make_account, writer: Writer):
    author = await make_account()
    stem = unique_tag("s")
    a, b, c, d, e = (f"{stem}{suffix}" for suffix in "abcde")
    await writer.posts(author, [a], 3)
    await writer.post(author, [b])  # b is used before e: it wins their tie
    await writer.posts(author, [c, a], 2)
    gone = await writer.post(author, [d])
    await writer.post(author, [e])
    await stubs.post.DeletePost(post_pb2.DeletePostRequest(post_id=gone), metadata=author.metadata)
    expected = [(a, 5), (c, 2), (b, 1), (e, 1)]
    found = await stubs.post.SearchTags(post_pb2.SearchTagsRequest(query=f"#{stem.upper()}"))
    assert [(t.name, t.post_count) for t in found.tags] == expected
    assert found.next_page_token == ""
    paged, token = [], ""
    while True:
        page = await stubs.post.SearchTags(post_pb2.SearchTagsRequest(query=stem, page_size=1, page_token=token))
        paged += [(t.name, t.post_count) for t in page.tags]
        token = page.next_page_token
        if not token:
            break
    assert paged == expected
    # '_' and '%' are LIKE wildcards: a prefix holding one matches it literally.
    underscored = f"{stem}_x"
    await writer.post(author, [underscored])
    found = await stubs.post.SearchTags(post_pb2.SearchTagsRequest(query=f"{stem}_"))
    assert [t.name for t in found.tags] == [underscored]


async def test_bad_tags_queries_and_tokens_are_invalid_argument(stubs, make_account, writer: Writer):
    reader = await make_account()
    for call, field in [
        (stubs.post.GetTag(post_pb2.GetTagRequest(tag="not-a-tag")), "tag"),
        (stubs.post.ListTagPosts(post_pb2.ListTagPostsRequest(tag=""), metadata=reader.metadata), "tag"),
        (stubs.post.SearchTags(post_pb2.SearchTagsRequest(query="a b")), "query"),
        (stubs.post.SearchTags(post_pb2.SearchTagsRequest(query="")), "query"),
    ]:
        code, _, fields = await refused(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and list(fields) == [field]
    tag = unique_tag()
    other = f"{tag}x"
    await writer.posts(reader, [tag, other], 2)
    first = await stubs.post.ListTagPosts(post_pb2.ListTagPostsRequest(tag=tag, page_size=1), metadata=reader.metadata)
    search = await stubs.post.SearchTags(post_pb2.SearchTagsRequest(query=tag, page_size=1))
    assert first.next_page_token and search.next_page_token
    for call in [
        # Another tag's token, a search token, a token of another prefix.
        stubs.post.ListTagPosts(
            post_pb2.ListTagPostsRequest(tag=other, page_token=first.next_page_token), metadata=reader.metadata
        ),
        stubs.post.ListTagPosts(
            post_pb2.ListTagPostsRequest(tag=tag, page_token=search.next_page_token), metadata=reader.metadata
        ),
        stubs.post.SearchTags(post_pb2.SearchTagsRequest(query=other, page_token=search.next_page_token)),
    ]:
        code, _, fields = await refused(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and list(fields) == ["page_token"]


async def test_untagging_a_batch_counts_each_post_once_and_runs_beside_creates(
    stubs, make_account, writer: Writer, db: Database
):
    """The erasure's batches (tag_repo.untag_posts): index rows and counts of many posts at once,
    while creates take the same tags, each in one statement in name order. The batch's posts hold
    the tags in the other order post by post ("b" first, then "a"), which locking post by post
    could deadlock on."""
    author, other = await make_account(), await make_account()
    a, b = sorted([unique_tag("a"), unique_tag("b")])
    hashtags = [[b], [a], [b, a, b]]
    leaving = [await writer.post(author, tags) for tags in hashtags]
    staying = await writer.posts(other, [a, b], 2)
    assert [await count_of(stubs, t) for t in (a, b)] == [4, 4]

    async def untag() -> None:
        async with db.unit_of_work() as session:
            await tag_repo.untag_posts(session, [(1, []), *zip(leaving, hashtags, strict=True)])

    # Creates on both tags run beside the batch; every one commits (no deadlock, no lost count).
    created = await asyncio.gather(untag(), *(writer.post(other, [a, b]) for _ in range(6)))
    assert [await count_of(stubs, t) for t in (a, b)] == [2 + 6, 2 + 6]
    page = await stubs.post.ListTagPosts(post_pb2.ListTagPostsRequest(tag=a, page_size=50), metadata=other.metadata)
    assert sorted(p.id for p in page.posts) == sorted(staying + list(created[1:]))
