"""Reflection: N heard turns become one summarised memory, in the background, through an injected summariser."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from memory.errors import MemoryInputError
from memory.reflection import ReflectionOptions, Reflector
from memory.types import Memory, MemoryKind, Recalled

pytestmark = pytest.mark.unit


@dataclass
class FakeStore:
    """Records remember() calls; implements memory.types.MemoryStore."""

    remembered: list[tuple[str, str | None, str, MemoryKind, float]] = field(default_factory=list)

    async def remember(
        self, character: str, player: str | None, text: str, *, kind: MemoryKind = "heard", importance: float = 0.5
    ) -> str:
        self.remembered.append((character, player, text, kind, importance))
        return str(len(self.remembered))

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        return []

    async def warm(self, character: str, player: str) -> None:
        return None

    async def list(self, character: str | None, player: str | None, *, limit: int = 100) -> list[Memory]:
        return []

    async def forget(self, player: str, character: str | None = None) -> int:
        return 0

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Summariser:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def __call__(self, turns: list[str]) -> str:
        self.calls.append(list(turns))
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("LLM down")
        return "summary: " + " / ".join(turns)


async def test_every_n_turns_become_one_reflection_per_conversation() -> None:
    store, summarise = FakeStore(), Summariser()
    reflector = Reflector(store, summarise, ReflectionOptions(every=3, importance=0.9))
    for i in range(3):
        reflector.observe("smith", "alice", f"alice turn {i}")
        reflector.observe("smith", "bob", f"bob turn {i}")
    reflector.observe("smith", "alice", "alice turn 3")  # starts the next window
    await reflector.drain()
    assert sorted(store.remembered) == [
        ("smith", "alice", "summary: alice turn 0 / alice turn 1 / alice turn 2", "reflection", 0.9),
        ("smith", "bob", "summary: bob turn 0 / bob turn 1 / bob turn 2", "reflection", 0.9),
    ]
    assert reflector.written == 2
    assert ["alice turn 3"] not in summarise.calls


async def test_observe_does_not_wait_for_the_summary() -> None:
    store, summarise = FakeStore(), Summariser()
    summarise.gate.clear()
    reflector = Reflector(store, summarise, ReflectionOptions(every=1))
    reflector.observe("smith", "alice", "hello")  # returns although the summariser is blocked
    assert store.remembered == []
    summarise.gate.set()
    await reflector.drain()
    assert len(store.remembered) == 1


async def test_a_failed_summary_is_dropped_and_logged() -> None:
    store, summarise = FakeStore(), Summariser()
    summarise.fail = True
    reflector = Reflector(store, summarise, ReflectionOptions(every=2))
    reflector.observe("smith", "alice", "a")
    reflector.observe("smith", "alice", "b")
    await reflector.drain()
    assert store.remembered == []
    assert reflector.written == 0


async def test_forget_drops_pending_turns_and_summaries_in_flight() -> None:
    store, summarise = FakeStore(), Summariser()
    summarise.gate.clear()
    reflector = Reflector(store, summarise, ReflectionOptions(every=2))
    reflector.observe("smith", "alice", "a1")
    reflector.observe("smith", "alice", "a2")  # summary in flight, blocked
    reflector.observe("smith", "alice", "a3")  # pending turn
    reflector.observe("smith", "bob", "b1")
    reflector.forget("alice")
    summarise.gate.set()
    reflector.observe("smith", "alice", "new1")
    reflector.observe("smith", "bob", "b2")
    await reflector.drain()
    assert [r[1:3] for r in store.remembered] == [("bob", "summary: b1 / b2")]
    reflector.observe("smith", "alice", "new2")
    await reflector.aclose()
    assert [r[2] for r in store.remembered if r[1] == "alice"] == ["summary: new1 / new2"]


async def test_blank_turns_are_not_counted() -> None:
    store, summarise = FakeStore(), Summariser()
    reflector = Reflector(store, summarise, ReflectionOptions(every=2))
    reflector.observe("smith", "alice", "  ")
    reflector.observe("smith", "alice", "one")
    await reflector.drain()
    assert summarise.calls == []


@pytest.mark.parametrize("kwargs", [{"every": 0}, {"importance": 1.5}])
def test_invalid_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(MemoryInputError):
        ReflectionOptions(**kwargs)  # type: ignore[arg-type]
