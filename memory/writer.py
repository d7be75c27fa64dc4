"""The background writer: one thread that applies the store's write operations in the order they were issued.

Consecutive additions are handed over together (embedded and written as one batch); any other operation
(``call``: a forget, a flush barrier) runs in its place in the order. ``close`` applies everything queued
before it, then stops the thread: nothing queued is lost.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from memory.errors import MemoryClosedError

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]


class _Stop:
    pass


class BatchWriter(Generic[T]):
    """Applies ``write_batch(items)`` for queued additions, at most ``max_batch`` items at a time.

    A failed batch is logged and counted in ``failed`` (its items are dropped: a memory store must not take
    the conversation down with it); a failed ``call`` sets the exception on its future instead.
    """

    def __init__(self, write_batch: Callable[[list[T]], None], *, max_batch: int = 64, name: str = "memory-writer"):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._ops: deque[T | _Call | _Stop] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.failed = 0  # items lost to failed batches
        self.written = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, item: T) -> None:
        self._put(item)

    def call(self, fn: Callable[[], R]) -> Future[R]:
        """Run ``fn`` on the writer thread after everything queued so far."""
        future: Future[R] = Future()
        self._put(_Call(fn, future))
        return future

    def barrier(self) -> Future[None]:
        """A future that completes when everything queued so far has been applied."""
        return self.call(lambda: None)

    def close(self) -> None:
        """Apply everything queued, then stop the thread (blocking). Idempotent."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._ops.append(_Stop())
                self._cond.notify()
        self._thread.join()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._ops)

    def _put(self, op: T | _Call) -> None:
        with self._cond:
            if self._closed:
                raise MemoryClosedError("the memory store is closed; open a new one")
            self._ops.append(op)
            self._cond.notify()

    def _next(self) -> list[T] | _Call | _Stop:
        with self._cond:
            while not self._ops:
                self._cond.wait()
            head = self._ops.popleft()
            if isinstance(head, _Call | _Stop):
                return head
            batch = [head]
            while self._ops and len(batch) < self._max_batch and not isinstance(self._ops[0], _Call | _Stop):
                batch.append(self._ops.popleft())  # type: ignore[arg-type]
            return batch

    def _run(self) -> None:
        while True:
            op = self._next()
            if isinstance(op, _Stop):
                return
            if isinstance(op, _Call):
                if op.future.set_running_or_notify_cancel():
                    try:
                        op.future.set_result(op.fn())
                    except BaseException as exc:  # handed to whoever awaits the future
                        op.future.set_exception(exc)
                continue
            try:
                self._write_batch(op)
                self.written += len(op)
            except Exception:
                self.failed += len(op)
                log.exception("memory write failed; memories dropped", extra={"count": len(op)})
