"""The memory contract: what is stored, what recall returns, and the store protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

MemoryKind = Literal["heard", "fact", "reflection", "world"]


@dataclass(frozen=True)
class Memory:
    id: str
    character: str
    player: str | None  # None: a shared world fact of this character, visible to every player
    text: str
    kind: MemoryKind
    importance: float  # 0..1
    created_at: float  # unix seconds


@dataclass(frozen=True)
class Recalled:
    memory: Memory
    score: float  # the ranking score (similarity, recency and importance combined)
    similarity: float  # cosine similarity to the query, 0..1


class MemoryStore(Protocol):
    """Memories per (character, player) plus world facts per character.

    A player's memories are never returned for another player. All methods are safe to call from the event
    loop: the work happens off it.
    """

    async def remember(
        self, character: str, player: str | None, text: str, *, kind: MemoryKind = "heard", importance: float = 0.5
    ) -> str: ...

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]: ...

    async def list(self, character: str | None, player: str | None, *, limit: int = 100) -> list[Memory]: ...

    async def forget(self, player: str, character: str | None = None) -> int: ...

    async def close(self) -> None: ...
