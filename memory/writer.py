"""The background writer: one thread that applies the store's write operations in the order they were issued.

Consecutive additions are handed over together (embedded and written as one batch); any other operation
(``call``: a forget, a flush barrier) runs in its place in the order.

Nothing is dropped. A batch that fails (the database is unreachable, ...) stays at the head of the queue and is
tried again after a backoff (``RetryPolicy``: 0.5 s doubling up to 30 s), for as long as the process lives;
what was queued behind it waits, so the order holds. A call made with ``retry=True`` (a forget) is retried the
same way. ``close`` wakes the writer for one last attempt; what still cannot be applied then is handed, in
order, to ``spill`` (the store writes it to its journal) and the futures still waiting fail with
MemoryBackendError.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from memory.errors import MemoryBackendError, MemoryClosedError, MemoryInputError

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

Spill = Callable[[list[Any]], None]  # the unapplied items and call records, in order


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts at a failed write: ``initial_s``, doubled after each failure, at most ``max_s``."""

    initial_s: float = 0.5
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise MemoryInputError("the retry backoff needs 0 < initial_s <= max_s")

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1, 2, ...)."""
        return min(self.max_s, self.initial_s * 2.0 ** min(max(0, failures - 1), 64))


@dataclass(frozen=True)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]
    retry: bool = False
    record: Any = None  # handed to spill when the call never succeeded; None: nothing to keep (a barrier)


class _Stop:
    pass


class BatchWriter(Generic[T]):
    """Applies ``write_batch(items)`` for queued additions, at most ``max_batch`` items at a time, in order."""

    def __init__(
        self,
        write_batch: Callable[[list[T]], None],
        *,
        max_batch: int = 64,
        retry: RetryPolicy | None = None,
        spill: Spill | None = None,
        name: str = "memory-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._retry_policy = retry or RetryPolicy()
        self._spill = spill
        self._ops: deque[T | _Call | _Stop] = deque()
        self._head: list[T] | _Call | None = None  # a failed operation waiting for its next attempt
        self._cond = threading.Condition()
        self._closed = False
        self.written = 0  # items stored
        self.attempts_failed = 0  # failed attempts (each one is logged)
        self.spilled = 0  # items and call records handed to spill at close
        self.lost = 0  # items that could be neither written nor spilled (each batch is logged as an error)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, item: T) -> None:
        self._put(item)

    def call(self, fn: Callable[[], R], *, retry: bool = False, record: Any = None) -> Future[R]:
        """Run ``fn`` on the writer thread after everything queued so far.

        ``retry``: a failure is retried like a failed batch (and ``record`` spilled at close) instead of being
        set on the future.
        """
        future: Future[R] = Future()
        self._put(_Call(fn, future, retry, record))
        return future

    def barrier(self) -> Future[None]:
        """A future that completes when everything queued so far has been applied."""
        return self.call(lambda: None)

    def purge(self, drop: Callable[[T], bool]) -> int:
        """Remove the queued items (also a failed batch waiting for its retry) for which ``drop`` is true.

        A batch being written at this moment is not touched: order a call after it to undo it.
        """
        with self._cond:
            before = len(self._ops)
            self._ops = deque(op for op in self._ops if isinstance(op, _Call | _Stop) or not drop(op))
            removed = before - len(self._ops)
            if isinstance(self._head, list):
                kept = [item for item in self._head if not drop(item)]
                removed += len(self._head) - len(kept)
                self._head = kept or None
            self._cond.notify_all()
            return removed

    def close(self) -> None:
        """Apply everything queued, one last attempt for what failed, spill the rest; stop the thread (blocking).

        Idempotent.
        """
        with self._cond:
            if not self._closed:
                self._closed = True
                self._ops.append(_Stop())
                self._cond.notify_all()
        self._thread.join()

    @property
    def pending(self) -> int:
        """Operations queued, including a failed batch's items waiting for a retry."""
        with self._cond:
            head = len(self._head) if isinstance(self._head, list) else int(self._head is not None)
            return len(self._ops) + head

    @property
    def retrying(self) -> int:
        """Items of a failed batch waiting for their next attempt."""
        with self._cond:
            return len(self._head) if isinstance(self._head, list) else 0

    def wait_retrying(self, timeout: float) -> bool:
        """Block until a failed operation waits for its next attempt (True), or ``timeout`` seconds (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._head is not None, timeout)

    # -- the writer thread -------------------------------------------------------------------------------

    def _put(self, op: T | _Call) -> None:
        with self._cond:
            if self._closed:
                raise MemoryClosedError("the memory store is closed; open a new one")
            self._ops.append(op)
            self._cond.notify_all()

    def _next(self) -> list[T] | _Call | _Stop:
        with self._cond:
            if self._head is not None:
                head, self._head = self._head, None
                return head
            while not self._ops:
                self._cond.wait()
            first = self._ops.popleft()
            if isinstance(first, _Call | _Stop):
                return first
            batch = [first]
            while self._ops and len(batch) < self._max_batch and not isinstance(self._ops[0], _Call | _Stop):
                batch.append(self._ops.popleft())  # type: ignore[arg-type]
            return batch

    def _run(self) -> None:
        failures = 0  # in a row
        while True:
            op = self._next()
            if isinstance(op, _Stop):
                return
            error = self._apply(op)
            if error is None:
                failures = 0
                continue
            failures += 1
            self.attempts_failed += 1
            with self._cond:
                if self._closed:  # that was the last attempt: keep the rest in the journal
                    self._spill_rest(op)
                    return
                self._head = op
                self._cond.notify_all()  # wakes wait_retrying()
            count = len(op) if isinstance(op, list) else 1
            log.warning("memory write failed; will retry", extra={"count": count}, exc_info=error)
            with self._cond:
                self._backoff(self._retry_policy.delay(failures))

    def _apply(self, op: list[T] | _Call) -> Exception | None:
        """None when done (a plain call's failure goes to its future); the error when it is to be retried."""
        if isinstance(op, _Call):
            if not op.retry:
                if op.future.set_running_or_notify_cancel():
                    try:
                        op.future.set_result(op.fn())
                    except BaseException as exc:  # handed to whoever awaits the future
                        op.future.set_exception(exc)
                return None
            try:
                result = op.fn()
            except Exception as exc:
                return exc
            if not op.future.done():
                op.future.set_result(result)
            return None
        try:
            self._write_batch(op)
        except Exception as exc:
            return exc
        self.written += len(op)
        return None

    def _backoff(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less when closing or when a purge emptied the failed batch. Holds the lock."""
        deadline = time.monotonic() + delay
        while not self._closed and self._head is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _spill_rest(self, failed: list[T] | _Call) -> None:
        """Hand the failed operation and all queued after it to spill; fail the waiting futures. Holds the lock."""
        rest: list[Any] = []
        futures: list[Future[Any]] = []
        for op in [failed, *self._ops]:
            if isinstance(op, _Stop):
                continue
            if isinstance(op, _Call):
                futures.append(op.future)
                if op.record is not None:
                    rest.append(op.record)
            elif isinstance(op, list):
                rest.extend(op)
            else:
                rest.append(op)
        self._ops.clear()
        error = MemoryBackendError("the memory database was unreachable until the store closed", retryable=True)
        if rest:
            try:
                if self._spill is None:
                    raise MemoryBackendError("this store has no journal")
                self._spill(rest)
                self.spilled += len(rest)
                error = MemoryBackendError(
                    "the memory database was unreachable until the store closed; the operation is journaled and "
                    "will be applied when the store is opened next",
                    retryable=True,
                )
            except Exception:
                self.lost += len(rest)
                log.exception("memory writes could be neither stored nor journaled; lost", extra={"count": len(rest)})
        for future in futures:
            if future.set_running_or_notify_cancel():  # False: the caller cancelled it
                future.set_exception(error)
