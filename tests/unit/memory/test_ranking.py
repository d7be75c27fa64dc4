"""Recall ranking: the score's terms and the order they give."""

from __future__ import annotations

import pytest

from memory.errors import MemoryInputError
from memory.ranking import RankOptions, rank, recency, score, similarity_from_distance
from memory.types import Memory

pytestmark = pytest.mark.unit

HOUR = 3600.0


def mem(id_: str, *, created_at: float = 0.0, importance: float = 0.5) -> Memory:
    return Memory(id_, "smith", "alice", f"text {id_}", "heard", importance, created_at)


def test_similarity_from_cosine_distance_is_clamped_to_0_1() -> None:
    assert similarity_from_distance(0.0) == 1.0
    assert similarity_from_distance(0.25) == 0.75
    assert similarity_from_distance(1.5) == 0.0
    assert similarity_from_distance(-1e-7) == 1.0


def test_recency_halves_every_half_life_and_ignores_clock_skew() -> None:
    assert recency(0.0, HOUR) == 1.0
    assert recency(HOUR, HOUR) == pytest.approx(0.5)
    assert recency(3 * HOUR, HOUR) == pytest.approx(0.125)
    assert recency(-HOUR, HOUR) == 1.0  # a memory "from the future" counts as new


def test_score_is_the_weighted_mean_of_the_terms() -> None:
    opts = RankOptions(weight_similarity=2.0, weight_recency=1.0, weight_importance=1.0, half_life_s=HOUR)
    assert score(1.0, 1.0, 0.0, opts) == pytest.approx(1.0)
    assert score(0.0, 0.0, 1e9, opts) == pytest.approx(0.0, abs=1e-9)
    assert score(0.5, 0.25, HOUR, opts) == pytest.approx((2 * 0.5 + 0.5 + 0.25) / 4)


def test_rank_orders_by_score_and_keeps_k() -> None:
    now = 100 * HOUR
    opts = RankOptions(half_life_s=HOUR)
    close_old = mem("close-old", created_at=now - 50 * HOUR)
    far_new = mem("far-new", created_at=now)
    close_new = mem("close-new", created_at=now)
    got = rank([(close_old, 0.9), (far_new, 0.1), (close_new, 0.9)], now=now, k=2, options=opts)
    assert [r.memory.id for r in got] == ["close-new", "close-old"]
    assert got[0].similarity == 0.9
    assert got[0].score > got[1].score


def test_importance_lifts_an_equally_similar_memory() -> None:
    opts = RankOptions()
    dull, vital = mem("dull", importance=0.1), mem("vital", importance=0.9)
    got = rank([(dull, 0.5), (vital, 0.5)], now=0.0, k=5, options=opts)
    assert [r.memory.id for r in got] == ["vital", "dull"]


def test_similarity_only_weights_ignore_recency_and_importance() -> None:
    opts = RankOptions(weight_recency=0.0, weight_importance=0.0)
    old_close = mem("old", created_at=0.0, importance=0.0)
    new_far = mem("new", created_at=1e9, importance=1.0)
    got = rank([(new_far, 0.2), (old_close, 0.8)], now=1e9, k=5, options=opts)
    assert [r.memory.id for r in got] == ["old", "new"]
    assert got[0].score == pytest.approx(0.8)


def test_rank_with_k_zero_or_no_candidates_is_empty() -> None:
    assert rank([(mem("a"), 1.0)], now=0.0, k=0, options=RankOptions()) == []
    assert rank([], now=0.0, k=3, options=RankOptions()) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight_similarity": -1.0},
        {"weight_similarity": 0.0, "weight_recency": 0.0, "weight_importance": 0.0},
        {"half_life_s": 0.0},
    ],
)
def test_invalid_rank_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(MemoryInputError):
        RankOptions(**kwargs)
