"""Stories through the running story_svc: idempotent create, one user's stories with `viewed`,
views counted once under concurrent double views, the viewers list (author only), delete (author
only), expiry without the sweeper, and visibility (private, blocked)."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc

from glimpse.graph.v1 import graph_pb2
from glimpse.story.v1 import story_pb2
from mesh.events import STORY_CREATED, STORY_DELETED
from tests.engagement_svc.conftest import refused
from tests.story_svc.conftest import age, execute, follow, make_private, outbox_events


def view(story_id: int) -> story_pb2.ViewStoryRequest:
    return story_pb2.ViewStoryRequest(story_id=story_id)


def of_user(user_id: int) -> story_pb2.ListStoriesRequest:
    return story_pb2.ListStoriesRequest(parent=f"users/{user_id}")


def viewers(story_id: int, size: int = 0, token: str = "") -> story_pb2.ListStoryViewersRequest:
    return story_pb2.ListStoryViewersRequest(parent=f"stories/{story_id}", page_size=size, page_token=token)


async def test_create_is_idempotent_per_key_and_lasts_24_hours(stories, make_account, upload_photo, sql):
    author = await make_account()
    media_id = await upload_photo(author)
    request = story_pb2.CreateStoryRequest(media_id=media_id, request_id="story-1")
    first, second = await asyncio.gather(
        stories.CreateStory(request, metadata=author.metadata), stories.CreateStory(request, metadata=author.metadata)
    )
    assert first == second
    assert (first.author_id, first.media_id) == (author.id, media_id)
    lifetime = first.expire_time.ToDatetime() - first.create_time.ToDatetime()
    assert lifetime == dt.timedelta(hours=24)
    assert await execute(sql, "SELECT count(*) FROM stories.stories WHERE author_id = :a", a=author.id) == 1
    assert len(await outbox_events(sql, STORY_CREATED, story_id=first.id, media_id=media_id)) == 1

    # The key names that story: used for another photo it is refused, and nothing is written.
    other = await upload_photo(author)
    code, reason, _ = await refused(
        stories.CreateStory(
            story_pb2.CreateStoryRequest(media_id=other, request_id="story-1"), metadata=author.metadata
        )
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED")
    # The photo is attached to the story: another story (or post) cannot take it.
    code, _, _ = await refused(
        stories.CreateStory(story_pb2.CreateStoryRequest(media_id=media_id), metadata=author.metadata)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_create_refuses_what_is_not_the_callers_uploaded_photo(stories, make_account, upload_photo, stubs):
    author, other = await make_account(), await make_account()
    code, _, fields = await refused(stories.CreateStory(story_pb2.CreateStoryRequest(), metadata=author.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "media_id" in fields
    theirs = await upload_photo(other)
    code, _, _ = await refused(
        stories.CreateStory(story_pb2.CreateStoryRequest(media_id=theirs), metadata=author.metadata)
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _, fields = await refused(
        stories.CreateStory(
            story_pb2.CreateStoryRequest(media_id=theirs, request_id="k" * 129), metadata=author.metadata
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in fields
    code, _, _ = await refused(stories.CreateStory(story_pb2.CreateStoryRequest(media_id=theirs)))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_users_stories_oldest_first_with_viewed_for_the_caller(stories, make_account, new_story):
    author, reader = await make_account(), await make_account()
    first, second = await new_story(author), await new_story(author)
    found = (await stories.ListStories(of_user(author.id), metadata=reader.metadata)).stories
    assert [(s.id, s.viewed) for s in found] == [(first.id, False), (second.id, False)]
    assert (await stories.ViewStory(view(second.id), metadata=reader.metadata)).viewed
    found = (await stories.ListStories(of_user(author.id), metadata=reader.metadata)).stories
    assert [(s.id, s.viewed) for s in found] == [(first.id, False), (second.id, True)]
    # The author's own stories are viewed by the author; their views are not recorded.
    await stories.ViewStory(view(first.id), metadata=author.metadata)
    own = (await stories.ListStories(of_user(author.id), metadata=author.metadata)).stories
    assert [s.viewed for s in own] == [True, True]
    assert (await stories.ListStoryViewers(viewers(first.id), metadata=author.metadata)).view_count == 0


async def test_views_are_counted_once_under_concurrent_double_views(stories, make_account, new_story, sql):
    author = await make_account()
    readers = [await make_account() for _ in range(6)]
    story = await new_story(author)
    # Every reader views twice at once, all readers at once.
    await asyncio.gather(*(stories.ViewStory(view(story.id), metadata=r.metadata) for r in readers for _ in range(2)))
    await stories.ViewStory(view(story.id), metadata=readers[0].metadata)
    listed = await stories.ListStoryViewers(viewers(story.id), metadata=author.metadata)
    assert listed.view_count == len(readers)
    assert sorted(v.user_id for v in listed.viewers) == sorted(r.id for r in readers)
    rows = await execute(sql, "SELECT count(*) FROM stories.story_views WHERE story_id = :s", s=story.id)
    assert rows == len(readers)


async def test_viewers_newest_first_paginated_for_the_author_only(stories, make_account, new_story):
    author, stranger = await make_account(), await make_account()
    readers = [await make_account() for _ in range(5)]
    story = await new_story(author)
    for reader in readers:
        await stories.ViewStory(view(story.id), metadata=reader.metadata)
    seen, token = [], ""
    while True:
        page = await stories.ListStoryViewers(viewers(story.id, 2, token), metadata=author.metadata)
        assert page.view_count == 5
        seen += [v.user_id for v in page.viewers]
        token = page.next_page_token
        if not token:
            break
    assert seen == [r.id for r in reversed(readers)]
    code, reason, _ = await refused(stories.ListStoryViewers(viewers(story.id), metadata=stranger.metadata))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_STORY_AUTHOR")
    code, _, _ = await refused(stories.ListStoryViewers(viewers(story.id, token="forged"), metadata=author.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _, fields = await refused(
        stories.ListStoryViewers(story_pb2.ListStoryViewersRequest(parent="posts/1"), metadata=author.metadata)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "parent" in fields


async def test_delete_is_for_the_author_and_takes_the_views(stories, make_account, new_story, sql):
    author, reader = await make_account(), await make_account()
    story = await new_story(author)
    await stories.ViewStory(view(story.id), metadata=reader.metadata)
    code, reason, _ = await refused(
        stories.DeleteStory(story_pb2.DeleteStoryRequest(story_id=story.id), metadata=reader.metadata)
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_STORY_AUTHOR")
    delete = story_pb2.DeleteStoryRequest(story_id=story.id)
    assert (await stories.DeleteStory(delete, metadata=author.metadata)).deleted
    assert not (await stories.DeleteStory(delete, metadata=author.metadata)).deleted
    assert await execute(sql, "SELECT count(*) FROM stories.story_views WHERE story_id = :s", s=story.id) == 0
    assert [e.media_id for e in await outbox_events(sql, STORY_DELETED, story_id=story.id)] == [story.media_id]
    code, reason, _ = await refused(stories.ViewStory(view(story.id), metadata=reader.metadata))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "STORY_NOT_FOUND")
    assert not (await stories.ListStories(of_user(author.id), metadata=reader.metadata)).stories


async def test_an_expired_story_is_never_served_though_no_sweeper_ran(stories, make_account, new_story, sql):
    author, reader = await make_account(), await make_account()
    old, fresh = await new_story(author), await new_story(author)
    # Cached by a read before it expires: the cache must not serve it afterwards either.
    await stories.ViewStory(view(old.id), metadata=reader.metadata)
    await age(sql, old.id)
    listed = (await stories.ListStories(of_user(author.id), metadata=reader.metadata)).stories
    assert [s.id for s in listed] == [fresh.id]
    for call in (
        stories.ViewStory(view(old.id), metadata=reader.metadata),
        stories.ListStoryViewers(viewers(old.id), metadata=author.metadata),
    ):
        code, reason, _ = await refused(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "STORY_NOT_FOUND")
    assert await execute(sql, "SELECT count(*) FROM stories.stories WHERE id = :s", s=old.id) == 1


async def test_private_and_blocked_authors_stories_are_invisible(stories, stubs, make_account, new_story):
    private, follower, stranger = await make_account(), await make_account(), await make_account()
    await follow(stubs, follower, private)
    await make_private(stubs, private)
    story = await new_story(private)
    assert [s.id for s in (await stories.ListStories(of_user(private.id), metadata=follower.metadata)).stories] == [
        story.id
    ]
    assert (await stories.ViewStory(view(story.id), metadata=follower.metadata)).viewed
    code, reason, _ = await refused(stories.ListStories(of_user(private.id), metadata=stranger.metadata))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_PRIVATE")
    code, reason, _ = await refused(stories.ViewStory(view(story.id), metadata=stranger.metadata))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "STORY_NOT_FOUND")

    author, blocker, blocked = await make_account(), await make_account(), await make_account()
    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocker.id), metadata=author.metadata)
    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=author.id), metadata=blocked.metadata)
    story = await new_story(author)
    for reader in (blocker, blocked):
        code, reason, _ = await refused(stories.ListStories(of_user(author.id), metadata=reader.metadata))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
        code, reason, _ = await refused(stories.ViewStory(view(story.id), metadata=reader.metadata))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "STORY_NOT_FOUND")
        # Deleting someone else's story they may not see says nothing about it.
        code, reason, _ = await refused(
            stories.DeleteStory(story_pb2.DeleteStoryRequest(story_id=story.id), metadata=reader.metadata)
        )
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "STORY_NOT_FOUND")
