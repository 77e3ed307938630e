"""A user's own likes and comments (ListLikesByUser, ListCommentsByUser: their data export): only the
caller's, newest like first and oldest comment first across pages, deleted comments left out."""

from __future__ import annotations

from glimpse.engagement.v1 import engagement_pb2


async def test_likes_by_user_are_the_callers_newest_first_across_pages(engagement, make_account, new_post):
    author, ada, bob = await make_account(), await make_account(), await make_account()
    posts = [await new_post(author) for _ in range(3)]
    for post_id in posts:
        await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=ada.metadata)
    await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=posts[0]), metadata=bob.metadata)
    seen, token, pages = [], "", 0
    while True:
        page = await engagement.ListLikesByUser(
            engagement_pb2.ListLikesByUserRequest(page_size=2, page_token=token), metadata=ada.metadata
        )
        seen += [like.post_id for like in page.liked_posts]
        pages += 1
        if not (token := page.next_page_token):
            break
    assert seen == posts[::-1] and pages == 2
    bobs = await engagement.ListLikesByUser(engagement_pb2.ListLikesByUserRequest(), metadata=bob.metadata)
    assert [like.post_id for like in bobs.liked_posts] == [posts[0]]


async def test_comments_by_user_are_the_callers_live_ones_oldest_first(engagement, make_account, new_post):
    author, ada = await make_account(), await make_account()
    post_id = await new_post(author)
    made = []
    for n in range(3):
        made.append(
            await engagement.CreateComment(
                engagement_pb2.CreateCommentRequest(post_id=post_id, text=f"comment {n}", request_id=f"c{n}"),
                metadata=ada.metadata,
            )
        )
    reply = await engagement.CreateComment(
        engagement_pb2.CreateCommentRequest(
            post_id=post_id, text="a reply", parent_comment_id=made[0].id, request_id="r"
        ),
        metadata=ada.metadata,
    )
    await engagement.DeleteComment(engagement_pb2.DeleteCommentRequest(comment_id=made[1].id), metadata=ada.metadata)
    first = await engagement.ListCommentsByUser(
        engagement_pb2.ListCommentsByUserRequest(page_size=2), metadata=ada.metadata
    )
    rest = await engagement.ListCommentsByUser(
        engagement_pb2.ListCommentsByUserRequest(page_size=2, page_token=first.next_page_token), metadata=ada.metadata
    )
    assert not rest.next_page_token
    found = [(c.id, c.text, c.parent_comment_id) for c in [*first.comments, *rest.comments]]
    assert found == [(made[0].id, "comment 0", 0), (made[2].id, "comment 2", 0), (reply.id, "a reply", made[0].id)]
    theirs = await engagement.ListCommentsByUser(engagement_pb2.ListCommentsByUserRequest(), metadata=author.metadata)
    assert list(theirs.comments) == []
