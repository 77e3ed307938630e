"""Who may be told: graph_svc's blocks, mutes and visibility rule, read through the shared `visibility`
client (cached per recipient, kept fresh by its `graph.*` watch; see visibility.Visibility for the
staleness bound).

A recipient is not told about someone they block, who blocks them, or whom they mute, nor about a
post they may not see (its author is private and they do not follow, or a block either way). A block
also removes what was already written (the `graph.blocked` consumer). graph_svc's failures
(UNAVAILABLE, DEADLINE_EXCEEDED) pass through as its gRPC error, so the event is retried.
"""

from __future__ import annotations

from visibility import VISIBLE, Visibility


class Privacy:
    def __init__(self, visibility: Visibility) -> None:
        self._visibility = visibility

    async def may_tell(self, recipient_id: int, actor_id: int, post_author_id: int = 0) -> bool:
        """Whether `recipient_id` may be told about what `actor_id` did (on a post by
        `post_author_id`, 0 when no post is involved): one GetViewerFilters and, for someone else's
        post, one CheckVisibility call when the recipient's answers are not cached."""
        filters = await self._visibility.home_filters(recipient_id)
        if filters.hides(actor_id):
            return False
        if not post_author_id or post_author_id == recipient_id:
            return True
        if post_author_id in filters.blocked:
            return False
        verdicts = await self._visibility.of(recipient_id, [post_author_id])
        return verdicts.get(post_author_id) == VISIBLE

    def forget(self, *user_ids: int) -> None:
        """Drops what is cached about the users as recipients (their blocks, mutes, what they see)."""
        self._visibility.forget(*user_ids)
