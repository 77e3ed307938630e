"""The one visibility rule, "may viewer V see author A's content?", and the bulk forms the feed and the
fan-out read to apply it cheaply; and how a lookup answers for a user hidden by a block.

The rule, in order: A's own content is visible to A; if either of V and A blocks the other, BLOCKED;
if A is private and V (possibly anonymous) does not follow A, NOT_FOLLOWER_OF_PRIVATE; otherwise
VISIBLE. Mutes are not part of it: a muted author's content stays visible everywhere but the muter's
home feed (ViewerFilters, FilterAudience).

Nothing here is cached: each answer is read from the committed rows, by one statement outside a
transaction (mesh.db.Database.read_only(transaction=False): no BEGIN and ROLLBACK round trips).
Callers that cache answers (a feed's filters for a few seconds) bound their own staleness and drop
entries on the `graph.*` events.

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import enum

from graph_svc import privacy_repository as privacy_repo
from graph_svc.privacy_repository import AuthorFacts, ViewerRelations
from mesh.db import Database, Session
from mesh.errors import NotFound, invalid_field

# Authors per CheckVisibility call (a page of posts has fewer), and users per FilterAudience call
# (the fan-out's follower batch is at most 5,000).
MAX_AUTHORS = 100
MAX_AUDIENCE = 5000


class Visibility(enum.Enum):
    VISIBLE = "visible"
    NOT_FOLLOWER_OF_PRIVATE = "not_follower_of_private"
    BLOCKED = "blocked"
    AUTHOR_NOT_FOUND = "author_not_found"


def visibility_of(viewer_id: int, author_id: int, facts: AuthorFacts | None) -> Visibility:
    """The rule itself, for one author whose facts were read for `viewer_id` (None: no such author)."""
    if facts is None:
        return Visibility.AUTHOR_NOT_FOUND
    if viewer_id == author_id:
        return Visibility.VISIBLE
    if facts.blocked:
        return Visibility.BLOCKED
    if facts.is_private and not facts.viewer_follows:
        return Visibility.NOT_FOLLOWER_OF_PRIVATE
    return Visibility.VISIBLE


async def refuse_if_blocked(session: Session, viewer_id: int | None, user_id: int, not_found: NotFound) -> None:
    """Raises `not_found` (what the lookup answers for a user that does not exist) if `user_id` blocks
    the viewer, and a NOT_FOUND saying so if the viewer blocks `user_id` (the viewer knows: telling
    them is no leak). Both carry reason USER_NOT_FOUND. An anonymous viewer (None) is never blocked."""
    if viewer_id is None or viewer_id == user_id:
        return
    viewer_blocks, user_blocks = await privacy_repo.blocks_between(session, viewer_id, user_id)
    if viewer_blocks:
        raise NotFound(f"you blocked user {user_id}; unblock them to see or follow them", reason="USER_NOT_FOUND")
    if user_blocks:
        raise not_found


class VisibilityService:
    def __init__(self, *, db: Database) -> None:
        self._db = db

    async def check(self, viewer_id: int, author_ids: list[int]) -> list[tuple[int, Visibility]]:
        """(author id, visibility) for each of `author_ids`, in request order (repeats kept), for
        `viewer_id` (0: anonymous). One statement. INVALID_ARGUMENT for a negative viewer, an id that
        is not positive, or more than MAX_AUTHORS ids."""
        if viewer_id < 0:
            raise invalid_field("viewer_id", "must be a user id, or 0 for an anonymous viewer")
        if len(author_ids) > MAX_AUTHORS:
            raise invalid_field("author_ids", f"at most {MAX_AUTHORS} ids per call")
        if any(author_id <= 0 for author_id in author_ids):
            raise invalid_field("author_ids", "must be user ids (positive)")
        if not author_ids:
            return []
        async with self._db.read_only(transaction=False) as session:
            facts = await privacy_repo.author_facts(session, viewer_id, list(set(author_ids)))
        return [(author, visibility_of(viewer_id, author, facts.get(author))) for author in author_ids]

    async def viewer_filters(self, viewer_id: int) -> ViewerRelations:
        """Who `viewer_id`'s home feed leaves out (blocked either way, muted) and the private accounts
        it follows, each ascending; one statement. INVALID_ARGUMENT for a viewer id that is not positive.
        An unknown viewer has no relations (empty lists)."""
        if viewer_id <= 0:
            raise invalid_field("viewer_id", "must be a user id")
        async with self._db.read_only(transaction=False) as session:
            return await privacy_repo.viewer_relations(session, viewer_id)

    async def audience_exclusions(self, author_id: int, user_ids: list[int]) -> list[int]:
        """Those of `user_ids` who must not receive `author_id`'s posts (they mute the author, or one
        blocks the other), ascending; one statement whose cost follows the author's own mutes and
        blocks, not the size of `user_ids`. INVALID_ARGUMENT for an author id that is not positive or
        more than MAX_AUDIENCE ids."""
        if author_id <= 0:
            raise invalid_field("author_id", "must be a user id")
        if len(user_ids) > MAX_AUDIENCE:
            raise invalid_field("user_ids", f"at most {MAX_AUDIENCE} ids per call")
        if not user_ids:
            return []
        async with self._db.read_only(transaction=False) as session:
            return await privacy_repo.audience_exclusions(session, author_id, list(set(user_ids)))
