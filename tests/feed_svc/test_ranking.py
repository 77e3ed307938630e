"""feed_svc.ranking: the score's properties (hypothesis) and a golden order on a fixed small graph."""

from __future__ import annotations

import dataclasses
from operator import itemgetter

from hypothesis import given
from hypothesis import strategies as st

from feed_svc.ranking import MAX_RUN, Signals, diversify, log_score, rank, rank_posts

NOW = 1_790_000_000_000
HOUR = 3_600_000

counts = st.integers(min_value=0, max_value=1_000_000)
ages = st.integers(min_value=0, max_value=365 * 24 * HOUR)
affinities = st.floats(min_value=0, max_value=1e6, allow_nan=False)
signals = st.builds(
    Signals,
    post_id=st.integers(min_value=1, max_value=2**63 - 1),
    author_id=st.integers(min_value=1, max_value=6),
    created_ms=ages.map(lambda age: NOW - age),
    likes=counts,
    comments=counts,
    saves=counts,
    affinity=affinities,
)


@given(signals, st.sampled_from(["likes", "comments", "saves"]), st.integers(min_value=1, max_value=1000))
def test_more_engagement_never_ranks_lower(post: Signals, signal: str, more: int) -> None:
    better = dataclasses.replace(post, **{signal: getattr(post, signal) + more})
    assert log_score(better, NOW) > log_score(post, NOW)


@given(signals, st.floats(min_value=0.01, max_value=1e3))
def test_more_affinity_never_ranks_lower(post: Signals, more: float) -> None:
    better = dataclasses.replace(post, affinity=post.affinity + more)
    assert log_score(better, NOW) >= log_score(post, NOW)
    if post.affinity < 1e5:  # beyond, a small addition is lost in float rounding of ln(1 + x)
        assert log_score(better, NOW) > log_score(post, NOW)


@given(signals, st.integers(min_value=1, max_value=30 * 24 * HOUR))
def test_newer_wins_at_equal_engagement(post: Signals, younger_by: int) -> None:
    newer = dataclasses.replace(post, created_ms=post.created_ms + younger_by, post_id=post.post_id)
    if newer.created_ms <= NOW:
        assert log_score(newer, NOW) > log_score(post, NOW)
    assert rank([post, newer], NOW)[0] == newer or newer.created_ms > NOW


@given(st.lists(signals, max_size=30, unique_by=lambda s: s.post_id))
def test_the_order_is_total_and_deterministic(posts: list[Signals]) -> None:
    ranked = rank(posts, NOW)
    assert rank(list(reversed(posts)), NOW) == ranked
    keys = [(-log_score(s, NOW), -s.post_id) for s in ranked]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


@given(signals)
def test_equal_signals_fall_back_to_the_newer_id(post: Signals) -> None:
    twin = dataclasses.replace(post, post_id=post.post_id - 1 if post.post_id > 1 else post.post_id + 1)
    first, second = rank([post, twin], NOW)
    assert first.post_id > second.post_id


@given(st.lists(signals, max_size=40, unique_by=lambda s: s.post_id))
def test_diversify_keeps_every_post_and_breaks_runs_when_it_can(posts: list[Signals]) -> None:
    ranked = rank(posts, NOW)
    out = diversify(ranked)
    assert sorted(s.post_id for s in out) == sorted(s.post_id for s in ranked)
    for i in range(MAX_RUN, len(out)):
        run = {s.author_id for s in out[i - MAX_RUN : i + 1]}
        if len(run) == 1:  # a run of three: only allowed when nobody else is left
            assert {s.author_id for s in out[i:]} == run


@given(
    st.lists(signals, max_size=40, unique_by=lambda s: s.post_id),
    st.dictionaries(st.integers(min_value=1, max_value=6), affinities),
)
def test_rank_posts_orders_exactly_as_rank(posts: list[Signals], by_author: dict[int, float]) -> None:
    """The feed's path (tuples, counts by post, affinity by author) and the reference (Signals) agree,
    down to ties, and so does diversify over either."""
    same = [dataclasses.replace(s, affinity=by_author.get(s.author_id, 0.0)) for s in posts]
    counts = {s.post_id: (s.likes, s.comments, s.saves) for s in same if s.likes or s.comments or s.saves}
    fast = rank_posts([(s.post_id, s.author_id, s.created_ms) for s in same], counts, by_author, NOW)
    assert fast == [(s.post_id, s.author_id) for s in rank(same, NOW)]
    assert diversify(fast, author=itemgetter(1)) == [(s.post_id, s.author_id) for s in diversify(rank(same, NOW))]


def test_golden_order_on_a_fixed_graph() -> None:
    """Reader 1 follows authors 10, 11 and 12, and often liked and commented on 12's posts (affinity
    6 like-equivalents), never on 10's or 11's. Seven candidates, created 1 to 30 hours ago."""
    posts = [
        Signals(post_id=101, author_id=10, created_ms=NOW - 1 * HOUR, likes=5),
        Signals(post_id=102, author_id=10, created_ms=NOW - 2 * HOUR, likes=30),
        Signals(post_id=103, author_id=10, created_ms=NOW - 3 * HOUR, likes=40, comments=10),
        Signals(post_id=104, author_id=11, created_ms=NOW - 12 * HOUR, likes=500, comments=80, saves=20),
        Signals(post_id=105, author_id=12, created_ms=NOW - 8 * HOUR, likes=1, affinity=6.0),
        Signals(post_id=106, author_id=12, created_ms=NOW - 30 * HOUR, likes=2000, affinity=6.0),
        Signals(post_id=107, author_id=11, created_ms=NOW - 1 * HOUR),
    ]
    # ln(score): 103 1.285, 102 1.258, 101 0.911, 105 0.796 (affinity lifts one like over 104's
    # 720 like-equivalents, 4 hours older), 104 0.639, 107 -0.116 (new but nothing on it), 106 -0.941.
    assert [s.post_id for s in rank(posts, NOW)] == [103, 102, 101, 105, 104, 107, 106]
    # Three in a row by author 10: the best post by someone else (105) moves up into third place.
    assert [s.post_id for s in diversify(rank(posts, NOW))] == [103, 102, 105, 101, 104, 107, 106]


def test_saves_change_the_order_and_weigh_three_likes() -> None:
    """Two hours old, one save (3 like-equivalents: ln(1 + ln 4) = 0.870, less 2/6 ln 2: 0.639)
    outranks two likes an hour newer (ln(1 + ln 3) = 0.742, less 1/6 ln 2: 0.627); without the save
    the newer post leads, and three likes at the saved post's age tie it (then the newer id wins)."""
    saved = Signals(post_id=201, author_id=20, created_ms=NOW - 2 * HOUR, saves=1)
    liked = Signals(post_id=202, author_id=21, created_ms=NOW - 1 * HOUR, likes=2)
    assert [s.post_id for s in rank([liked, saved], NOW)] == [201, 202]
    unsaved = dataclasses.replace(saved, saves=0)
    assert [s.post_id for s in rank([unsaved, liked], NOW)] == [202, 201]
    three_likes = Signals(post_id=203, author_id=22, created_ms=saved.created_ms, likes=3)
    assert log_score(three_likes, NOW) == log_score(saved, NOW)
    assert [s.post_id for s in rank([saved, three_likes], NOW)] == [203, 201]
