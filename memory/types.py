"""The memory contract: what is stored, what recall returns, the store protocol and the embedder protocol."""

from __future__ import annotations

from collections.abc import Sequence
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
    score: float  # the ranking score (similarity, recency and importance combined), 0..1
    similarity: float  # cosine similarity to the query, 0..1


class MemoryStore(Protocol):
    """Memories per (character, player) plus world facts per character.

    A player's memories are never returned for another player. All methods are safe to call from the event
    loop: the work happens off it. ``remember`` only queues the write and returns the new memory's id at once;
    ``flush`` waits until everything queued so far is stored (also while the backend is unreachable: writes are
    retried, never dropped), ``close`` stores everything queued, then closes (a store with a journal keeps what
    the backend cannot take then for the next store opened on it). Operations are applied in the order they
    were issued (a ``forget`` also removes writes queued before it, and journaled ones).
    """

    async def remember(
        self, character: str, player: str | None, text: str, *, kind: MemoryKind = "heard", importance: float = 0.5
    ) -> str: ...

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        """The best ``k`` of this player's memories and the character's world facts, best first (``[]``: there
        are none).

        A recall that cannot answer says so, it never passes for one that found nothing: it raises
        ``MemoryRecallError`` with ``reason`` "timeout" once ``budget_s`` has run out (it never waits longer),
        or "error" when the embedder or the database failed (the cause chained). Callers go on without
        memories and count the degraded recall. Invalid arguments raise ``MemoryInputError``, a closed store
        ``MemoryClosedError``.
        """
        ...

    async def warm(self, character: str, player: str) -> None:
        """Load what a recall of this conversation reads (a hint, ahead of its first recall; nothing stored is
        fine). Raises ``MemoryBackendError`` when the database fails; nothing depends on it having run."""
        ...

    async def list(self, character: str | None, player: str | None, *, limit: int = 100) -> list[Memory]:
        """The newest memories first. ``character`` None: every character. ``player`` given: that player's
        memories plus the world facts; None: every player's (an operator's view)."""
        ...

    async def forget(self, player: str, character: str | None = None) -> int:
        """Delete every memory of ``player`` (of every character unless one is given); returns how many."""
        ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


class Embedder(Protocol):
    """Texts to unit-length vectors. Blocking: callers run it off the event loop."""

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
