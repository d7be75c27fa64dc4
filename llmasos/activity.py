"""Activity: whether any player is speaking or being answered, so background model work keeps out of the way.

On a small machine the LLM, speech recognition, the voice and the embeddings share the same few cores. The
LLM worker already stops background requests for a reply; but a memory summary or a prompt warm-up that runs
while a player speaks slows the speech recognition of what they say (measured: a 0.6 s utterance decoded in
1 s instead of 0.1 s). So background work (``run``) starts only while no session is active, and is stopped
when one becomes active: it raises ``Yielded`` and its owner tries again later, or not at all.

A session is active from the moment its player starts to speak (or types) until the reply to it is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Yielded(Exception):
    """Background work was stopped because a session became active."""


class Activity:
    def __init__(self) -> None:
        self._active: set[object] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._jobs: set[asyncio.Future[object]] = set()
        self._stopped: set[asyncio.Future[object]] = set()

    @property
    def idle(self) -> bool:
        return not self._active

    def set(self, session: object, active: bool) -> None:
        """``session`` is active (its player speaks or is being answered) or not; cheap, call it often."""
        if active:
            if session in self._active:
                return
            self._active.add(session)
            self._idle.clear()
            for job in list(self._jobs):  # the work in progress stops for the turn
                self._stopped.add(job)
                job.cancel()
        else:
            self._active.discard(session)
            if not self._active:
                self._idle.set()

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` once no session is active; raises Yielded if one becomes active before it is done."""
        while not self.idle:
            await self._idle.wait()
        job: asyncio.Future[T] = asyncio.ensure_future(work())
        self._jobs.add(job)  # type: ignore[arg-type]
        try:
            return await job
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if job in self._stopped and (current is None or not current.cancelling()):
                raise Yielded("a session became active") from None
            raise
        finally:
            self._jobs.discard(job)  # type: ignore[arg-type]
            self._stopped.discard(job)  # type: ignore[arg-type]
            if not job.done():
                job.cancel()
