"""Recall ranking: similarity, recency and importance combined into one score.

The store first takes the nearest memories by similarity (a candidate pool), then orders them by

    score = (w_s * similarity + w_r * recency + w_i * importance) / (w_s + w_r + w_i)

where ``recency = 0.5 ** (age / half_life)``. Every term is in 0..1, so the score is too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from memory.errors import MemoryInputError
from memory.types import Memory, Recalled


@dataclass(frozen=True)
class RankOptions:
    weight_similarity: float = 1.0
    weight_recency: float = 0.3
    weight_importance: float = 0.3
    half_life_s: float = 72 * 3600.0

    def __post_init__(self) -> None:
        weights = (self.weight_similarity, self.weight_recency, self.weight_importance)
        if min(weights) < 0 or sum(weights) <= 0:
            raise MemoryInputError("ranking weights must be >= 0 and not all zero")
        if self.half_life_s <= 0:
            raise MemoryInputError("the recency half-life must be > 0")


def similarity_from_distance(distance: float) -> float:
    """Cosine distance (0..2) to a similarity in 0..1 (opposite vectors count as 0)."""
    return min(1.0, max(0.0, 1.0 - distance))


def recency(age_s: float, half_life_s: float) -> float:
    return float(0.5 ** (max(0.0, age_s) / half_life_s))


def score(similarity: float, importance: float, age_s: float, options: RankOptions) -> float:
    total = options.weight_similarity + options.weight_recency + options.weight_importance
    value = (
        options.weight_similarity * similarity
        + options.weight_recency * recency(age_s, options.half_life_s)
        + options.weight_importance * importance
    )
    return value / total


def rank(candidates: Iterable[tuple[Memory, float]], *, now: float, k: int, options: RankOptions) -> list[Recalled]:
    """The best ``k`` of (memory, similarity) pairs, best first; ties go to the newer memory."""
    scored = [
        Recalled(memory=m, score=score(sim, m.importance, now - m.created_at, options), similarity=sim)
        for m, sim in candidates
    ]
    scored.sort(key=lambda r: (r.score, r.memory.created_at), reverse=True)
    return scored[: max(0, k)]
