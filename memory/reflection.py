"""Reflection: every N heard turns of a (character, player) conversation become one summarised memory.

The summary comes from an injected ``summarise`` coroutine (llmasos wires the LLM in; memory/ imports no
dialogue code). Summaries run as background tasks: ``observe`` never waits for the LLM. A failed summary is
logged and dropped. ``forget(player)`` drops that player's unsummarised turns and discards summaries still
in flight, so nothing of a forgotten player is written afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from memory.errors import MemoryInputError
from memory.types import MemoryStore

Summarise = Callable[[list[str]], Awaitable[str]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReflectionOptions:
    every: int = 8  # heard turns per reflection
    importance: float = 0.8  # of the reflection memory

    def __post_init__(self) -> None:
        if self.every < 1:
            raise MemoryInputError("reflection needs every >= 1 turns")
        if not 0.0 <= self.importance <= 1.0:
            raise MemoryInputError(f"importance {self.importance} is outside 0..1")


class Reflector:
    def __init__(self, store: MemoryStore, summarise: Summarise, options: ReflectionOptions | None = None) -> None:
        self._store = store
        self._summarise = summarise
        self._options = options or ReflectionOptions()
        self._turns: dict[tuple[str, str], list[str]] = {}
        self._epoch: dict[str, int] = {}  # bumped by forget(player): in-flight summaries of older epochs are dropped
        self._tasks: set[asyncio.Task[None]] = set()
        self.written = 0

    def observe(self, character: str, player: str, text: str) -> None:
        """Record one heard turn (e.g. "player: ...", "character: ..."); may start a summary in the background."""
        if not text.strip():
            return
        key = (character, player)
        turns = self._turns.setdefault(key, [])
        turns.append(text)
        if len(turns) >= self._options.every:
            del self._turns[key]
            task = asyncio.get_running_loop().create_task(
                self._reflect(character, player, turns, self._epoch.get(player, 0))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def forget(self, player: str) -> None:
        for key in [k for k in self._turns if k[1] == player]:
            del self._turns[key]
        self._epoch[player] = self._epoch.get(player, 0) + 1

    async def drain(self) -> None:
        """Wait for every summary started so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Finish the summaries in flight (unsummarised turns are not summarised)."""
        await self.drain()
        self._turns.clear()

    async def _reflect(self, character: str, player: str, turns: list[str], epoch: int) -> None:
        try:
            summary = (await self._summarise(turns)).strip()
        except Exception:
            log.exception("reflection summary failed; turns not summarised", extra={"turns": len(turns)})
            return
        if not summary or self._epoch.get(player, 0) != epoch:
            return
        try:
            await self._store.remember(
                character, player, summary, kind="reflection", importance=self._options.importance
            )
        except Exception:
            log.exception("reflection could not be stored")
            return
        self.written += 1
