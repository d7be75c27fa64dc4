"""The background writer: order, batching, barriers, retries with backoff, purge, and the spill at close."""

from __future__ import annotations

import threading

import pytest

from memory.errors import MemoryBackendError, MemoryClosedError, MemoryInputError
from memory.writer import BatchWriter, RetryPolicy

pytestmark = pytest.mark.unit

FAST = RetryPolicy(initial_s=0.001, max_s=0.001)  # retries at once (the waits are not synchronisation)
SLOW = RetryPolicy(initial_s=3600, max_s=3600)  # the next attempt only comes from close() or a purge


class Recorder:
    """A write_batch that records the batches stored; the first call can be held until released.

    A batch holding an item of ``fail_on`` fails (``failures_left`` times, then it succeeds; None: always).
    """

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail_on: set[int] = set()
        self.failures_left: int | None = None

    def __call__(self, items: list[int]) -> None:
        self.entered.set()
        self.release.wait()
        if self.fail_on.intersection(items) and (self.failures_left is None or self.failures_left > 0):
            if self.failures_left is not None:
                self.failures_left -= 1
            raise RuntimeError("backend down")
        self.batches.append(list(items))


def test_adds_queued_behind_a_slow_write_go_out_as_one_batch() -> None:
    rec = Recorder(hold_first=True)
    writer: BatchWriter[int] = BatchWriter(rec, max_batch=4)
    writer.add(0)
    assert rec.entered.wait(10)  # the writer is now busy with [0]
    for i in range(1, 8):
        writer.add(i)
    rec.release.set()
    writer.barrier().result(10)
    assert rec.batches == [[0], [1, 2, 3, 4], [5, 6, 7]]
    assert writer.written == 8
    writer.close()


def test_calls_run_in_issue_order_between_adds() -> None:
    rec = Recorder(hold_first=True)
    writer: BatchWriter[int] = BatchWriter(rec, max_batch=10)
    writer.add(0)
    assert rec.entered.wait(10)
    writer.add(1)
    seen = writer.call(lambda: [x for b in rec.batches for x in b])
    writer.add(2)
    rec.release.set()
    assert seen.result(10) == [0, 1]  # the call saw exactly what was queued before it
    writer.close()
    assert rec.batches == [[0], [1], [2]]


def test_close_applies_everything_queued() -> None:
    rec = Recorder(hold_first=True)
    writer: BatchWriter[int] = BatchWriter(rec, max_batch=3)
    writer.add(0)
    assert rec.entered.wait(10)
    for i in range(1, 10):
        writer.add(i)
    rec.release.set()
    writer.close()
    assert sorted(x for b in rec.batches for x in b) == list(range(10))
    assert writer.pending == 0


def test_use_after_close_is_refused_and_close_is_idempotent() -> None:
    writer: BatchWriter[int] = BatchWriter(Recorder())
    writer.close()
    writer.close()
    with pytest.raises(MemoryClosedError):
        writer.add(1)
    with pytest.raises(MemoryClosedError):
        writer.barrier()


def test_a_failed_batch_is_retried_in_order_until_it_is_stored() -> None:
    rec = Recorder(hold_first=True)
    rec.fail_on = {1}
    rec.failures_left = 2
    writer: BatchWriter[int] = BatchWriter(rec, max_batch=2, retry=FAST)
    writer.add(0)
    assert rec.entered.wait(10)
    writer.add(1)
    writer.add(2)
    seen = writer.call(lambda: [list(b) for b in rec.batches])  # runs once [1, 2] is stored, not before
    writer.add(3)
    rec.release.set()
    assert seen.result(10) == [[0], [1, 2]]
    writer.close()
    assert rec.batches == [[0], [1, 2], [3]]
    assert (writer.attempts_failed, writer.written, writer.lost, writer.spilled) == (2, 4, 0, 0)


def test_backoff_doubles_up_to_its_bound() -> None:
    assert [RetryPolicy().delay(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert RetryPolicy(initial_s=0.1, max_s=0.3).delay(1000) == 0.3
    with pytest.raises(MemoryInputError):
        RetryPolicy(initial_s=2, max_s=1)


def test_close_wakes_the_backoff_and_spills_what_still_fails_in_order() -> None:
    rec = Recorder()
    rec.fail_on = {0, 1, 2, 3}
    spilled: list[list[object]] = []
    writer: BatchWriter[int] = BatchWriter(rec, max_batch=2, retry=SLOW, spill=spilled.append)
    writer.add(0)
    assert writer.wait_retrying(10)  # the writer now waits an hour before its next attempt
    writer.add(1)
    forget = writer.call(lambda: 7, retry=True, record="forget-record")
    flushed = writer.barrier()
    writer.add(2)
    writer.add(3)
    assert writer.retrying == 1 and writer.pending == 6
    writer.close()  # does not wait out the backoff: one last attempt, then the rest is spilled
    assert spilled == [[0, 1, "forget-record", 2, 3]]
    assert (writer.spilled, writer.lost, writer.written) == (5, 0, 0)
    for future in (forget, flushed):
        with pytest.raises(MemoryBackendError, match="journaled"):
            future.result(10)


def test_without_a_spill_what_cannot_be_stored_is_counted_as_lost() -> None:
    rec = Recorder()
    rec.fail_on = {0}
    writer: BatchWriter[int] = BatchWriter(rec, retry=SLOW)
    writer.add(0)
    assert writer.wait_retrying(10)
    writer.close()
    assert (writer.lost, writer.spilled) == (1, 0)


def test_a_backend_back_at_close_gets_the_last_attempt() -> None:
    rec = Recorder()
    rec.fail_on = {0}
    rec.failures_left = 1
    spilled: list[list[object]] = []
    writer: BatchWriter[int] = BatchWriter(rec, retry=SLOW, spill=spilled.append)
    writer.add(0)
    assert writer.wait_retrying(10)
    writer.add(1)
    writer.close()
    assert rec.batches == [[0], [1]] and spilled == []


def test_purge_removes_queued_items_and_the_failed_batch_waiting_for_its_retry() -> None:
    rec = Recorder()
    rec.fail_on = {0, 1, 2, 3, 4, 5, 6, 7}
    rec.failures_left = 1
    writer: BatchWriter[int] = BatchWriter(rec, max_batch=4, retry=SLOW)
    for i in range(4):
        writer.add(i)
    assert writer.wait_retrying(10)
    assert writer.retrying == 4
    for i in range(4, 8):
        writer.add(i)
    assert writer.purge(lambda x: x % 2 == 0) == 4
    assert writer.retrying == 2
    writer.close()  # the last attempt succeeds
    assert rec.batches == [[1, 3], [5, 7]]


def test_a_purge_that_empties_the_failed_batch_ends_its_backoff() -> None:
    rec = Recorder()
    rec.fail_on = {0}
    writer: BatchWriter[int] = BatchWriter(rec, retry=SLOW)
    writer.add(0)
    assert writer.wait_retrying(10)
    writer.add(1)
    assert writer.purge(lambda x: x == 0) == 1
    writer.barrier().result(10)  # without waiting an hour
    assert rec.batches == [[1]]
    writer.close()


def test_a_retrying_call_is_tried_again_and_not_reported_as_failed() -> None:
    writer: BatchWriter[int] = BatchWriter(Recorder(), retry=FAST)
    attempts: list[int] = []

    def flaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("backend down")
        return 5

    assert writer.call(flaky, retry=True).result(10) == 5
    assert len(attempts) == 3 and writer.attempts_failed == 2
    writer.close()


def test_an_exception_in_a_call_reaches_its_future() -> None:
    writer: BatchWriter[int] = BatchWriter(Recorder())

    def boom() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        writer.call(boom).result(10)
    assert writer.call(lambda: 42).result(10) == 42
    writer.close()
