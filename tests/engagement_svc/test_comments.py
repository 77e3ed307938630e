"""Comments through the running engagement_svc: text rules, replies nested one level, idempotent
creation, who may delete, deletion of a thread, pagination across equal times, and mentions."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest
from sqlalchemy import text

from engagement_svc.comments import TEXT_MAX
from glimpse.engagement.v1 import engagement_pb2
from mesh.events import COMMENT_CREATED, COMMENT_DELETED, USER_MENTIONED
from tests.engagement_svc.conftest import outbox_events, refused, scalar


def comment(post_id: int, body: str, reply_to: int = 0, key: str = "") -> engagement_pb2.CreateCommentRequest:
    return engagement_pb2.CreateCommentRequest(post_id=post_id, text=body, parent_comment_id=reply_to, request_id=key)


async def comment_count(engagement, post_id: int) -> int:
    response = await engagement.BatchGetEngagement(engagement_pb2.BatchGetEngagementRequest(post_ids=[post_id]))
    return response.engagement[0].comment_count


async def top_level(engagement, post_id: int, size: int = 100, token: str = "") -> engagement_pb2.ListCommentsResponse:
    request = engagement_pb2.ListCommentsRequest(parent=f"posts/{post_id}", page_size=size, page_token=token)
    return await engagement.ListComments(request)


async def replies_of(
    engagement, comment_id: int, size: int = 100, token: str = ""
) -> engagement_pb2.ListRepliesResponse:
    request = engagement_pb2.ListRepliesRequest(parent=f"comments/{comment_id}", page_size=size, page_token=token)
    return await engagement.ListReplies(request)


async def test_replies_nest_one_level_and_keep_what_they_answered(engagement, make_account, new_post, sql):
    author, ada, bob = await make_account(), await make_account(), await make_account()
    post_id = await new_post(author)
    first = await engagement.CreateComment(comment(post_id, "  first!  "), metadata=ada.metadata)
    assert (first.text, first.parent_comment_id, first.reply_to_comment_id, first.reply_count) == ("first!", 0, 0, 0)
    reply = await engagement.CreateComment(comment(post_id, "welcome", first.id), metadata=author.metadata)
    assert (reply.parent_comment_id, reply.reply_to_comment_id) == (first.id, first.id)
    # A reply to a reply joins the same top-level comment, remembering whom it answered.
    nested = await engagement.CreateComment(comment(post_id, "thanks", reply.id), metadata=ada.metadata)
    assert (nested.parent_comment_id, nested.reply_to_comment_id) == (first.id, reply.id)
    await engagement.CreateComment(comment(post_id, "second"), metadata=bob.metadata)

    page = await top_level(engagement, post_id)
    assert [(c.text, c.reply_count) for c in page.comments] == [("first!", 2), ("second", 0)]
    assert [c.text for c in (await replies_of(engagement, first.id)).comments] == ["welcome", "thanks"]
    assert await comment_count(engagement, post_id) == 4
    (created,) = await outbox_events(sql, COMMENT_CREATED, comment_id=nested.id)
    assert (created.post_author_id, created.author_id) == (author.id, ada.id)
    assert (created.parent_comment_id, created.parent_author_id) == (first.id, ada.id)
    assert (created.reply_to_comment_id, created.reply_to_author_id) == (reply.id, author.id)
    assert created.text_preview == "thanks"

    code, _, fields = await refused(replies_of(engagement, reply.id))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and f"comments/{first.id}" in fields["parent"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "must not be empty"),
        (" \n\t ", "must not contain a control character: U+0009"),
        ("  \n  ", "must not be empty"),
        ("x" * (TEXT_MAX + 1), f"must be at most {TEXT_MAX} characters"),
        # The mesh refuses C0/C1 controls other than tab and line breaks before the service sees them.
        ("a\x1b[2Jb", "U+001B at offset 1"),
        ("tab\there", "U+0009 at offset 3"),
        ("bell\x07", "U+0007"),
        ("c1\x85", "U+0085"),
    ],
)
async def test_bad_text_is_invalid_argument_naming_text(engagement, make_account, new_post, body, problem, sql):
    ada = await make_account()
    post_id = await new_post(ada)
    code, reason, fields = await refused(engagement.CreateComment(comment(post_id, body), metadata=ada.metadata))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert problem in fields["text"]
    assert await scalar(sql, "SELECT count(*) FROM engagement.comments WHERE post_id = :p", p=post_id) == 0


async def test_text_is_trimmed_with_line_breaks_as_newlines_up_to_the_limit(engagement, make_account, new_post):
    ada = await make_account()
    post_id = await new_post(ada)
    made = await engagement.CreateComment(comment(post_id, "\r\n one\r\ntwo\rthree 東京 👋 \n"), metadata=ada.metadata)
    assert made.text == "one\ntwo\nthree 東京 👋"
    longest = " " + "é" * TEXT_MAX + " "
    assert (await engagement.CreateComment(comment(post_id, longest), metadata=ada.metadata)).text == "é" * TEXT_MAX


async def test_ten_concurrent_creates_with_one_key_make_one_comment(engagement, make_account, new_post, sql):
    ada = await make_account()
    post_id = await new_post(ada)
    request = comment(post_id, "only once", key="key-1")
    made = await asyncio.gather(*(engagement.CreateComment(request, metadata=ada.metadata) for _ in range(10)))
    assert len({c.id for c in made}) == 1
    assert await comment_count(engagement, post_id) == 1
    assert len(await outbox_events(sql, COMMENT_CREATED, post_id=post_id)) == 1
    # A retry later gets the same comment; the same key for other text is refused and changes nothing.
    assert (await engagement.CreateComment(request, metadata=ada.metadata)).id == made[0].id
    code, reason, _ = await refused(
        engagement.CreateComment(comment(post_id, "something else", key="key-1"), metadata=ada.metadata)
    )
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED")
    # Keys are per author: another user's identical key is a new comment.
    bob = await make_account()
    assert (await engagement.CreateComment(request, metadata=bob.metadata)).id != made[0].id
    assert await comment_count(engagement, post_id) == 2


async def test_only_the_comment_or_post_author_deletes(engagement, make_account, new_post, sql):
    author, ada, stranger = await make_account(), await make_account(), await make_account()
    post_id = await new_post(author)
    by_ada = await engagement.CreateComment(comment(post_id, "mine"), metadata=ada.metadata)
    other = await engagement.CreateComment(comment(post_id, "also mine"), metadata=ada.metadata)
    delete = engagement_pb2.DeleteCommentRequest
    code, reason, _ = await refused(engagement.DeleteComment(delete(comment_id=by_ada.id), metadata=stranger.metadata))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_COMMENT_OR_POST_AUTHOR")
    assert (await engagement.DeleteComment(delete(comment_id=by_ada.id), metadata=ada.metadata)).deleted
    assert not (await engagement.DeleteComment(delete(comment_id=by_ada.id), metadata=ada.metadata)).deleted
    # The post's author may remove anyone's comment on it.
    assert (await engagement.DeleteComment(delete(comment_id=other.id), metadata=author.metadata)).deleted
    assert await comment_count(engagement, post_id) == 0
    assert len(await outbox_events(sql, COMMENT_DELETED, post_id=post_id)) == 2
    code, reason, _ = await refused(
        engagement.DeleteComment(delete(comment_id=7240392310784001), metadata=ada.metadata)
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "COMMENT_NOT_FOUND")


async def test_deleting_a_thread_removes_its_replies_from_lists_and_counts(engagement, make_account, new_post, sql):
    author, ada = await make_account(), await make_account()
    post_id = await new_post(author)
    thread = await engagement.CreateComment(comment(post_id, "thread"), metadata=ada.metadata)
    replies = [
        await engagement.CreateComment(comment(post_id, f"reply {n}", thread.id), metadata=author.metadata)
        for n in range(3)
    ]
    kept = await engagement.CreateComment(comment(post_id, "kept"), metadata=ada.metadata)
    # A single reply deleted: one less on the count and on its thread.
    await engagement.DeleteComment(
        engagement_pb2.DeleteCommentRequest(comment_id=replies[0].id), metadata=author.metadata
    )
    assert (await top_level(engagement, post_id)).comments[0].reply_count == 2
    assert await comment_count(engagement, post_id) == 4
    await engagement.DeleteComment(engagement_pb2.DeleteCommentRequest(comment_id=thread.id), metadata=ada.metadata)
    assert [c.id for c in (await top_level(engagement, post_id)).comments] == [kept.id]
    assert await comment_count(engagement, post_id) == 1
    (deleted,) = await outbox_events(sql, COMMENT_DELETED, comment_id=thread.id)
    assert sorted(deleted.reply_ids) == sorted(r.id for r in replies[1:])
    for gone in (thread.id, replies[1].id):
        code, reason, _ = await refused(replies_of(engagement, gone))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "COMMENT_NOT_FOUND")
        # Nobody can reply into a deleted thread either.
        code, reason, _ = await refused(engagement.CreateComment(comment(post_id, "late", gone), metadata=ada.metadata))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "COMMENT_NOT_FOUND")


async def test_a_reply_must_answer_a_comment_of_the_same_post(engagement, make_account, new_post):
    ada = await make_account()
    one, two = await new_post(ada), await new_post(ada)
    on_one = await engagement.CreateComment(comment(one, "here"), metadata=ada.metadata)
    code, reason, _ = await refused(engagement.CreateComment(comment(two, "there", on_one.id), metadata=ada.metadata))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "COMMENT_NOT_FOUND")
    code, _, fields = await refused(engagement.CreateComment(comment(two, "x", -1), metadata=ada.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "parent_comment_id" in fields


async def test_comments_and_replies_page_oldest_first_across_equal_times(engagement, make_account, new_post, sql):
    ada = await make_account()
    post_id = await new_post(ada)
    thread = await engagement.CreateComment(comment(post_id, "thread"), metadata=ada.metadata)
    same = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    base = thread.id + 1000
    insert = text(
        "INSERT INTO engagement.comments (id, post_id, author_id, parent_id, text, created_at) "
        "VALUES (:id, :post, :author, :parent, :text, :at)"
    )
    async with sql.begin() as conn:
        # Ids deliberately out of time order: the page order is time, then id.
        for n, comment_id in enumerate([base + 5, base + 1, base + 3, base + 2, base + 4]):
            for parent in (None, thread.id):
                row_id = comment_id + (100 if parent else 0)
                values = {
                    "id": row_id,
                    "post": post_id,
                    "author": ada.id,
                    "parent": parent,
                    "text": f"c{n}",
                    "at": same,
                }
                await conn.execute(insert, values)
    ordered = [base + i for i in range(1, 6)]

    async def every(read) -> list[int]:
        seen, token = [], ""
        while True:
            page = await read(token)
            seen += [c.id for c in page.comments]
            if not (token := page.next_page_token):
                return seen

    assert await every(lambda t: top_level(engagement, post_id, 2, t)) == [*ordered, thread.id]
    assert await every(lambda t: replies_of(engagement, thread.id, 2, t)) == [i + 100 for i in ordered]


async def test_existing_users_mentioned_in_a_comment_are_told_once(engagement, make_account, new_post, sql):
    ada, bob = await make_account(), await make_account()
    post_id = await new_post(ada)
    body = f"@{bob.user.username} look, @{bob.user.username.upper()}! cc @nobody_{ada.id} and me @{ada.user.username}"
    made = await engagement.CreateComment(comment(post_id, body), metadata=ada.metadata)
    mentions = await outbox_events(sql, USER_MENTIONED, post_id=post_id)
    assert [(m.mentioned_user_id, m.actor_id, m.comment_id) for m in mentions] == [(bob.id, ada.id, made.id)]


async def test_get_comment_answers_live_comments_and_replies_only(engagement, make_account, new_post):
    author, ada = await make_account(), await make_account()
    post_id = await new_post(author)
    top = await engagement.CreateComment(comment(post_id, "report me"), metadata=ada.metadata)
    reply = await engagement.CreateComment(comment(post_id, "me too", top.id), metadata=author.metadata)
    got = await engagement.GetComment(engagement_pb2.GetCommentRequest(comment_id=top.id))
    assert (got.id, got.author_id, got.text, got.reply_count) == (top.id, ada.id, "report me", 1)
    assert (await engagement.GetComment(engagement_pb2.GetCommentRequest(comment_id=reply.id))).text == "me too"
    await engagement.DeleteComment(engagement_pb2.DeleteCommentRequest(comment_id=top.id), metadata=ada.metadata)
    for comment_id in (top.id, reply.id, 987654321):
        code, reason, _ = await refused(engagement.GetComment(engagement_pb2.GetCommentRequest(comment_id=comment_id)))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "COMMENT_NOT_FOUND")
