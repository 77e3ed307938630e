"""The ranked home feed's score and its author-diversity pass: pure functions, the clock passed in.

    score = (1 + ENGAGEMENT_WEIGHT * ln(1 + likes + 2 comments + 3 saves)
               + AFFINITY_WEIGHT * ln(1 + affinity))
            * 2 ** (-age_hours / RECENCY_HALF_LIFE_HOURS)

- Engagement, with diminishing returns: the 100th like moves a post far less than the first
  (ln(1 + x)), so a viral post cannot bury everything else. A comment costs its author more than a
  like and a save says "I want this again", so they weigh 2 and 3 likes (the order Instagram has
  described for its signals; the exact weights are ours).
- Affinity: the reader's own recent likes (1) and comments (2) on the author, each decaying with a
  7-day half-life (feed_svc.affinity keeps it), also through ln(1 + x); weighed twice engagement,
  since what the reader keeps engaging with predicts what they want better than what the crowd does.
- Recency: the whole sum halves every RECENCY_HALF_LIFE_HOURS (6): one like (ln 2 = 0.69) is worth
  being about 4.5 hours newer, a hundred likes about 15 hours, so a home feed of a few hundred
  candidates still reads mostly newest first, with the posts people engage with pulled up.
- The base 1 keeps a post without any signal ranked by age alone, and makes the score strictly
  positive, so it is monotone in every signal (more engagement or affinity never ranks lower, newer
  never ranks lower at equal signals).

Ordering compares log(score) (the same order: log is increasing), which never underflows for old
posts; ties (equal signals and age) fall back to the post id, larger (newer) first, so the order is
total and deterministic. Then `diversify` keeps no more than two consecutive posts by one author
(unless only that author's posts are left).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeVar

RECENCY_HALF_LIFE_HOURS = 6.0
ENGAGEMENT_WEIGHT = 1.0
AFFINITY_WEIGHT = 2.0
COMMENT_WEIGHT = 2.0
SAVE_WEIGHT = 3.0
# Consecutive posts by one author that diversify allows.
MAX_RUN = 2

_MS_PER_HOUR = 3_600_000.0
# ln(2) per millisecond of age: the recency term of log(score) is age_ms * this.
_LN2_PER_MS = math.log(2) / (RECENCY_HALF_LIFE_HOURS * _MS_PER_HOUR)
T = TypeVar("T")
_author_id: Callable[[Any], int] = attrgetter("author_id")


# Slots and not frozen: a first ranked page builds 200 of these, and a frozen dataclass's __init__
# (object.__setattr__ per field) cost twice as much. Treat it as a value all the same.
@dataclass(slots=True)
class Signals:
    """What the score reads of one candidate post. `created_ms`: the post's creation time (Unix ms);
    counts are the post's live likes, comments (replies included) and saves; `affinity`: the reader's
    decayed interactions with the author, in like-equivalents (>= 0)."""

    post_id: int
    author_id: int
    created_ms: int
    likes: int = 0
    comments: int = 0
    saves: int = 0
    affinity: float = 0.0


def log_score(signals: Signals, now_ms: int) -> float:
    """ln(score) of the module's formula at `now_ms` (Unix ms). A post dated after `now_ms` (clock
    skew between hosts) counts as just created."""
    return _log_score(signals.likes, signals.comments, signals.saves, signals.affinity, now_ms - signals.created_ms)


def _log_score(likes: int, comments: int, saves: int, affinity: float, age_ms: int) -> float:
    """The formula, for log_score and rank_posts alike (so both order by the same floats)."""
    engagement = likes + COMMENT_WEIGHT * comments + SAVE_WEIGHT * saves
    base = (
        1.0
        + ENGAGEMENT_WEIGHT * math.log1p(engagement if engagement > 0 else 0.0)
        + AFFINITY_WEIGHT * math.log1p(affinity if affinity > 0 else 0.0)
    )
    return math.log(base) - (age_ms if age_ms > 0 else 0) * _LN2_PER_MS


def score(signals: Signals, now_ms: int) -> float:
    """The score itself (> 0; underflows to 0.0 for posts many months old: order with `rank`)."""
    return math.exp(log_score(signals, now_ms))


def rank(candidates: Sequence[Signals], now_ms: int) -> list[Signals]:
    """`candidates` best first: by log_score, then by post id (newer first); a total order."""
    return sorted(candidates, key=lambda s: (-log_score(s, now_ms), -s.post_id))


def rank_posts(
    posts: Iterable[tuple[int, int, int]],
    counts: Mapping[int, tuple[int, int, int]],
    affinity: Mapping[int, float],
    now_ms: int,
) -> list[tuple[int, int]]:
    """`rank` for a feed's candidates without building a Signals for each: `posts` are (post id,
    author id, created Unix ms), `counts` (likes, comments, saves) by post id (a post without an entry
    has none), `affinity` the reader's by author id (0 without an entry). Returns (post id, author
    id) best first, in exactly `rank`'s order for the same signals (one scoring function): a first
    ranked page orders a few hundred candidates, and the objects and the two calls per candidate
    of `rank` were about half of its CPU."""
    none = (0, 0, 0)
    count_of = counts.get
    affinity_of = affinity.get
    keyed = []
    for post_id, author_id, created_ms in posts:
        likes, comments, saves = count_of(post_id, none)
        key = -_log_score(likes, comments, saves, affinity_of(author_id, 0.0), now_ms - created_ms)
        keyed.append((key, -post_id, author_id))
    keyed.sort()
    return [(-negative_id, author_id) for _, negative_id, author_id in keyed]


def diversify(ranked: Sequence[T], max_run: int = MAX_RUN, *, author: Callable[[T], int] = _author_id) -> list[T]:
    """`ranked` reordered so that no more than `max_run` consecutive posts share an author (`author`
    of each: a Signals' author_id by default; rank_posts' pairs pass itemgetter(1)): each slot takes
    the best remaining post, unless the last `max_run` posts are all by its author, then the best
    remaining post by someone else. Only when every remaining post is by that one author do they
    follow in order. A post moves down only as far as needed; the result is a permutation."""
    remaining = list(ranked)
    out: list[T] = []
    # The author of the posts at the end of `out`, and how many in a row.
    run_author, run = None, 0
    while remaining:
        pick = 0
        if run >= max_run:
            pick = next((i for i, s in enumerate(remaining) if author(s) != run_author), 0)
        chosen = remaining.pop(pick)
        chosen_author = author(chosen)
        if chosen_author == run_author:
            run += 1
        else:
            run_author, run = chosen_author, 1
        out.append(chosen)
    return out
