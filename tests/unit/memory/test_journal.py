"""The write journal: lines that round-trip, a torn last line, removal, purge, compaction and replay order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memory.journal import Forget, Journal, Record, apply, compact
from memory.types import Memory

pytestmark = pytest.mark.unit


def mem(id_: str, player: str | None = "alice", character: str = "smith", text: str = "a memory") -> Memory:
    return Memory(id_, character, player, text, "heard", 0.25, 1_700_000_000.5)


def test_records_round_trip_one_json_line_each(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "data" / "journal.jsonl")
    records: list[Record] = [
        mem("m1", text='Ælfrida paid 5 gold — "thanks"\nsee you'),
        mem("m2", player=None),
        Forget("f1", "bob", None),
        Forget("f2", "bob", "baker"),
    ]
    journal.append(records[:2])
    journal.append(records[2:])
    assert journal.read() == records
    lines = journal.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert json.loads(lines[0])["text"] == records[0].text  # type: ignore[union-attr]


def test_no_journal_reads_as_empty_and_is_not_created(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    assert journal.read() == []
    assert journal.remove({"x"}) == 0 and journal.purge("alice", None) == 0
    assert not journal.path.exists()


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([mem("m1"), mem("m2")])
    with journal.path.open("ab") as f:
        f.write(b'{"v":1,"op":"add","id":"m3","charac')  # a crash in the middle of an append
    assert [r.id for r in journal.read()] == ["m1", "m2"]
    journal.append([mem("m4")])  # what comes after is still read
    assert [r.id for r in journal.read()] == ["m1", "m2", "m4"]


def test_remove_and_purge_rewrite_the_journal_without_those_records(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append(
        [
            mem("a1"),
            mem("a2", character="baker"),
            mem("b1", player="bob"),
            mem("w1", player=None),
            Forget("f1", "alice", None),
        ]
    )
    assert journal.purge("alice", "baker") == 1
    assert [r.id for r in journal.read()] == ["a1", "b1", "w1", "f1"]
    assert journal.purge("alice", None) == 1  # the forget record stays: the database still has to apply it
    assert [r.id for r in journal.read()] == ["b1", "w1", "f1"]
    assert "alice" not in journal.path.read_text().replace('"player":"alice"', "")  # no text of alice is left
    assert journal.remove({"b1", "f1", "unknown"}) == 2
    assert [r.id for r in journal.read()] == ["w1"]


def test_compact_drops_repeats_and_memories_a_later_forget_deletes() -> None:
    records: list[Record] = [
        mem("a1"),
        mem("a2", character="baker"),
        mem("b1", player="bob"),
        Forget("f1", "alice", "smith"),
        mem("a3"),  # after the forget: kept
        mem("a1"),  # a repeat (journaled twice): the first counts
        Forget("f1", "alice", "smith"),
    ]
    assert [r.id for r in compact(records)] == ["a2", "b1", "f1", "a3"]


def test_apply_keeps_the_order_and_stops_at_the_first_failure() -> None:
    done: list[object] = []

    def write(batch: list[Memory]) -> None:
        if any(m.id == "x" for m in batch):
            raise RuntimeError("backend down")
        done.append([m.id for m in batch])

    def forget(player: str, character: str | None) -> None:
        done.append(("forget", player, character))

    records: list[Record] = [mem("1"), mem("2"), mem("3"), Forget("f", "alice", None), mem("4"), mem("x"), mem("5")]
    assert apply(records, write, forget, batch=2) == 4  # the batch [4, x] failed as a whole
    assert done == [["1", "2"], ["3"], ("forget", "alice", None)]
    assert apply(records[:5], write, forget, batch=10) == 5
