"""What one character writes into memory, in the background: the lines it heard, under the player each
belongs to; at most ``memory_writes_per_min`` (beyond it writes wait, they are never dropped), each line also
given to reflection (summaries)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from llmasos.services import Services
from memory.errors import MemoryStoreError
from rtc.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class Recollection:
    def __init__(self, services: Services, character: str, writes_per_min: float, spawn: Spawn) -> None:
        self._s = services
        self._character = character
        self._spawn = spawn  # the owner's background tasks: awaited when it closes
        self._bucket = TokenBucket(writes_per_min / 60.0, burst=max(2.0, writes_per_min / 6))

    def warm(self, player: str) -> None:
        """Load this player's memories before the first recall (a hint)."""
        memory, character = self._s.memory, self._character

        async def warm() -> None:
            try:
                await memory.warm(character, player)
            except MemoryStoreError as exc:  # the first recall will say whether memory is degraded
                log.warning("memory warm-up failed", extra={"reason": repr(exc)})

        self._spawn(warm(), "conversation-warm-memory")

    def write(self, player: str, lines: list[str]) -> None:
        memory, character, observer, reflect = self._s.memory, self._character, self._s.observer, self._s.reflect
        bucket = self._bucket

        async def write() -> None:
            try:
                waits = [bucket.reserve() for _ in lines]
                await asyncio.sleep(waits[-1])
                for line in lines:
                    await memory.remember(character, player, line, kind="heard")
                    if reflect is not None:
                        reflect(character, player, line)
            except Exception as exc:
                observer.error("memory_write")
                log.error("memory write failed", extra={"reason": repr(exc)})

        if lines:
            self._spawn(write(), "conversation-remember")
