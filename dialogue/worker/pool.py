"""Which request runs where, and who yields to whom: the scheduling every engine in the worker shares.

An engine has a few slots (llama.cpp: contexts, each with one KV cache; transformers: concurrent generations),
and a slot serves one request at a time. ``ContextPool.take`` gives each request the free slot where it finds
the most of its prompt cached and throws the least away (ties: the slot its affinity key used last, then the
least recently used): a conversation keeps finding its own cached prefix, while a second conversation or a
memory summary uses another slot instead of evicting it.

Priorities: a ``background`` request (memory summary, prompt warm-up) never waits in front of a ``foreground``
one (a reply): it stops at its next batch of prompt tokens or its next token while any foreground request is
generating or waiting, and fails with ``Preempted``. An ``idle`` request (generated content) yields the same way
to both: the warm-up that computes a conversation's next prompt while its player listens is worth more than a
job that nobody waits on by the second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from dialogue.worker.protocol import Done, Request

log = logging.getLogger("dialogue.worker.engine")

Chat = list[tuple[str, str]]  # (role, content) of each message


class Preempted(Exception):
    """A background request gave the model up to a foreground one."""


class Halted(Exception):
    """The request was stopped (its client hung up)."""


class Slot:
    """One place a request runs (a llama.cpp context with its KV cache; a slot of a model without one) and what
    it holds (the last prompt and reply it computed)."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.busy = False
        self.chat: Chat = []
        self.affinity: str | None = None
        self.used = 0.0  # time.monotonic() of its last request
        self.request: Request | None = None  # the request using it now, and the event that stops that one
        self.halt: threading.Event | None = None

    def ending_for(self, request: Request) -> bool:
        """Busy with a request that ends within a batch of tokens once ``request`` (a foreground one) waits: a
        background one (preempted), one whose client hung up, or the same conversation's previous request (a
        conversation sends its next request only after hanging up on the last one)."""
        mine = self.request
        if mine is None:
            return False
        if mine.priority == "background" or (self.halt is not None and self.halt.is_set()):
            return True
        return request.affinity is not None and mine.affinity == request.affinity

    def worth(self, chat: Chat) -> int:
        """Messages of ``chat`` found in the cache, less the cached messages it would throw away (a reply at
        the end of the cache is never worth keeping: it is the last thing computed)."""
        shared = 0
        for mine, theirs in zip(self.chat, chat, strict=False):
            if mine != theirs:
                break
            shared += 1
        lost = len(self.chat) - shared
        if lost and self.chat[-1][0] == "assistant":
            lost -= 1
        return shared - lost


class ContextPool:
    """The contexts, which of them are busy, and how many foreground requests are in the house."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self._cond = threading.Condition()
        self.foreground = 0  # foreground requests generating or waiting for a context
        self.background = 0  # background requests generating or waiting (idle ones yield to them)

    def busy(self) -> int:
        with self._cond:
            return sum(slot.busy for slot in self.slots)

    def take(self, request: Request, chat: Chat, halt: threading.Event | None = None) -> Slot:
        """The free context worth the most to ``chat``; waits for one. A foreground request also waits for a
        busy context worth more that is about to be free (``Slot.ending_for``) rather than compute its prompt
        again elsewhere. A background request never waits in front of a foreground one: it raises Preempted
        while any is in the house. Work that is not a reply runs one request at a time per priority (a warm-up
        waits for another warm-up, a content job for another job): two computations on the same few cores
        each take more than twice as long (their threads spin against each other), and a warm-up that is not
        done when the player speaks is no warm-up."""
        background = request.priority != "foreground"

        def rank(s: Slot) -> tuple[int, bool, float]:
            return (s.worth(chat), request.affinity is not None and s.affinity == request.affinity, -s.used)

        with self._cond:
            self.yield_if_outranked(request)
            if not background:
                self.foreground += 1
            elif request.priority == "background":
                self.background += 1
            while True:
                try:
                    self.yield_if_outranked(request)  # one came while this waited
                except Preempted:
                    if request.priority == "background":
                        self.background -= 1
                    raise
                if background and any(s.busy and s.request is not None and s.request.priority == request.priority
                                       for s in self.slots):  # fmt: skip
                    self._cond.wait()  # one of its kind at a time
                    continue
                free = [slot for slot in self.slots if not slot.busy]
                ending = [] if background else [s for s in self.slots if s.busy and s.ending_for(request)]
                best = max(free, key=rank) if free else None
                if best is not None and not any(s.worth(chat) > best.worth(chat) for s in ending):
                    best.busy, best.request, best.halt = True, request, halt
                    return best
                self._cond.wait()

    def yield_if_outranked(self, request: Request) -> None:
        """Preempted when a request of a higher priority is in the house (foreground over background and idle;
        background over idle)."""
        if request.priority != "foreground" and self.foreground:
            raise Preempted("a conversation turn is using the model")
        if request.priority == "idle" and self.background:
            raise Preempted("a conversation's background work is using the model")

    def poke(self) -> None:
        """A busy context's request was stopped: waiters look again."""
        with self._cond:
            self._cond.notify_all()

    def give_back(self, slot: Slot, request: Request, chat: Chat) -> None:
        with self._cond:
            slot.busy, slot.request, slot.halt = False, None, None
            slot.chat = chat
            slot.affinity = request.affinity
            slot.used = time.monotonic()
            if request.priority == "foreground":
                self.foreground -= 1
            elif request.priority == "background":
                self.background -= 1
            self._cond.notify_all()

    def drain(self) -> list[Slot]:
        """Wait until no context is busy, then hold them all (for closing)."""
        with self._cond:
            while any(slot.busy for slot in self.slots):
                self._cond.wait()
            for slot in self.slots:
                slot.busy = True
            return list(self.slots)


class PooledEngine:
    """An engine whose slots are in ``self.pool``: ``generate`` takes a slot, runs ``_run`` on its context,
    logs how the request went (at debug level: waits, cache, speed) and gives the slot back with what it
    holds now."""

    pool: ContextPool

    def check(self, request: Request, halt: threading.Event) -> None:
        """Raises Halted when the client hung up, Preempted when a request of a higher priority waits: an
        engine calls it between batches of prompt tokens and at every token."""
        if halt.is_set():
            raise Halted()
        self.pool.yield_if_outranked(request)

    def _run(
        self, context: Any, request: Request, chat: Chat, halt: threading.Event, reply: list[str], t0: float
    ) -> Iterator[str | Done]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def generate(self, request: Request, halt: threading.Event) -> Iterator[str | Done]:
        """The reply's pieces of text, then Done. Raises Halted, Preempted, ValueError (a bad request)."""
        chat: Chat = [(m[0], m[1]) for m in request.messages]
        t0 = time.perf_counter()
        slot = self.pool.take(request, chat, halt)
        waited, others = time.perf_counter() - t0, self.pool.busy() - 1
        reply: list[str] = []
        computed = False  # the whole prompt was computed
        outcome = "failed"
        done: Done | None = None
        try:
            for item in self._run(slot.context, request, chat, halt, reply, t0):
                computed = True
                if isinstance(item, Done):
                    done = item
                yield item
            outcome = "done"
        except Halted:
            outcome = "halted"
            raise
        except Preempted:
            outcome = "preempted"
            raise
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request %s %s: waited %.0f ms for a context (then %d other busy), prompt %s tokens "
                    "(%s cached), first piece %s ms, %d pieces, %.0f ms in all",
                    request.priority,
                    outcome,
                    waited * 1000,
                    others,
                    done.input_tokens if done else "?",
                    done.cached_tokens if done else "?",
                    done.first_ms if done else "?",
                    len(reply),
                    (time.perf_counter() - t0) * 1000,
                )
            # what the cache holds now: the prompt and the reply as far as it got (a prompt stopped part way:
            # at most the messages before the last)
            self.pool.give_back(slot, request, [*chat, ("assistant", "".join(reply))] if computed else chat[:-1])
