"""The rules of hashtag reads: a tag and its count, a tag's posts as the caller may see them, and tags
by prefix. (Tags are written with their post, in post_svc.service's units of work.)

Raises mesh.errors.DomainError subclasses; graph_svc's failures (the visibility rule) pass through.
"""

from __future__ import annotations

import hashlib

from mesh.db import Database
from mesh.pagination import Count, Id, Page, PageCursor, decode_cursor, encode_cursor, page_of, page_size
from post_svc import repository as repo
from post_svc import tag_repository as tag_repo
from post_svc.captions import tag_named
from post_svc.repository import PostRecord
from post_svc.tag_repository import TagRecord
from visibility import Visibility

# How many times one ListTagPosts reads further when the caller may not see what it read, each read
# twice the size of the one before: a page costs at most 15 x scan_size(page_size) rows, and then
# answers with what it found and a token that goes on from there.
SCAN_ROUNDS = 4


def scan_size(limit: int, round_: int = 0) -> int:
    """Rows read in round `round_` of a page of `limit` posts: the page, one to tell whether another
    follows, and half a page more, so that a few hidden posts (bench tags: one author in ten private)
    do not cost a second round; then twice as many each round."""
    return (limit + 1 + limit // 2) << round_


class TagPostCursor(PageCursor):
    """A tag page starts below this post id (newest first): the last post shown, or the last one read
    if those after it were hidden from the caller."""

    before: Id


class TagSearchCursor(PageCursor):
    """A tag search page starts after this tag in (post_count DESC, id) order."""

    post_count: Count
    id: Id


def _scope(kind: str, text: str) -> str:
    """The page-token scope of a list of `kind` for `text`: a digest, as a tag of 100 characters of
    another script would make a token longer than mesh.pagination accepts."""
    return f"{kind}:{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"


class TagService:
    def __init__(self, db: Database, *, visibility: Visibility) -> None:
        self._db = db
        self._visibility = visibility

    async def get(self, raw_tag: str) -> TagRecord:
        """The tag `raw_tag` names (see captions.tag_named) with its exact count of live posts, 0 if no
        post carries it. INVALID_ARGUMENT (tag) if it is not a hashtag."""
        name = tag_named(raw_tag, "tag")
        async with self._db.read_only() as session:
            found = await tag_repo.get_tag(session, name)
        return found or TagRecord(name, 0, 0)

    async def list_posts(self, raw_tag: str, viewer_id: int | None, size: int, token: str) -> Page[PostRecord]:
        """The live posts carrying the tag, newest first, without those `viewer_id` may not see (a
        private author it does not follow, a block either way; None: a service acting for no user,
        which sees all). A page may be short, even empty, with a next token when most of what it read
        was hidden (see SCAN_ROUNDS). INVALID_ARGUMENT for a bad tag, page size or page token."""
        tag = tag_named(raw_tag, "tag")
        limit = page_size(size)
        scope = _scope("tag", tag)
        cursor = decode_cursor(token, TagPostCursor, scope)
        before = cursor.before if cursor else None
        shown: list[PostRecord] = []
        for round_ in range(SCAN_ROUNDS):
            wanted = scan_size(limit, round_)
            async with self._db.read_only() as session:
                batch = await repo.list_by_tag(session, tag, before, wanted)
            allowed = await self._visible_authors(viewer_id, batch)
            for post in batch:
                if post.author_id not in allowed:
                    continue
                if len(shown) == limit:  # one more visible post: the page is full and not the last
                    return Page(shown, encode_cursor(TagPostCursor(before=shown[-1].id), scope))
                shown.append(post)
            if len(batch) < wanted:  # the tag's oldest post was read
                return Page(shown, "")
            before = batch[-1].id
        assert before is not None  # every round read a full batch
        return Page(shown, encode_cursor(TagPostCursor(before=before), scope))

    async def _visible_authors(self, viewer_id: int | None, posts: list[PostRecord]) -> set[int]:
        authors = {post.author_id for post in posts}
        if viewer_id is None:
            return authors
        others = [author for author in authors if author != viewer_id]
        allowed = await self._visibility.visible(viewer_id, others) if others else set()
        return allowed | ({viewer_id} & authors)

    async def search(self, query: str, size: int, token: str) -> Page[TagRecord]:
        """Tags in use starting with `query` (normalised as a tag: "#Caf" finds "café"), most used
        first, then oldest first. Counts move while one pages: a tag whose count changes between two
        pages can move across the boundary (be shown twice or not at all); nothing else can.
        INVALID_ARGUMENT (query) if it is not the start of a hashtag; for a bad page size or token."""
        prefix = tag_named(query, "query")
        limit = page_size(size)
        scope = _scope("tags", prefix)
        cursor = decode_cursor(token, TagSearchCursor, scope)
        after = (cursor.post_count, cursor.id) if cursor else None
        async with self._db.read_only() as session:
            found = await tag_repo.search_tags(session, prefix, after, limit + 1)
        return page_of(found, limit, scope, lambda tag: TagSearchCursor(post_count=tag.post_count, id=tag.id))
