"""The background writer: order, batching, barriers, and nothing lost on close."""

from __future__ import annotations

import threading

import pytest

from memory.errors import MemoryClosedError
from memory.writer import BatchWriter

pytestmark = pytest.mark.unit


class Recorder:
    """A write_batch that records batches; the first call can be held until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.fail_on: set[int] = set()

    def __call__(self, items: list[int]) -> None:
        self.entered.set()
        self.release.wait()
        if self.fail_on.intersection(items):
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


def test_a_failed_batch_is_counted_and_the_writer_goes_on() -> None:
    rec = Recorder(hold_first=True)
    rec.fail_on = {1}
    writer: BatchWriter[int] = BatchWriter(rec, max_batch=2)
    writer.add(0)
    assert rec.entered.wait(10)
    writer.add(1)
    writer.add(2)
    writer.barrier()
    writer.add(3)
    rec.release.set()
    writer.close()
    assert rec.batches == [[0], [3]]
    assert writer.failed == 2
    assert writer.written == 2


def test_an_exception_in_a_call_reaches_its_future() -> None:
    writer: BatchWriter[int] = BatchWriter(Recorder())

    def boom() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        writer.call(boom).result(10)
    assert writer.call(lambda: 42).result(10) == 42
    writer.close()
