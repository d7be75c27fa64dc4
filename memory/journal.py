"""The write journal: memory operations that could not reach the database before the store closed.

One JSON object per line, appended with flush + fsync:

    {"v": 1, "op": "add", "id": ..., "character": ..., "player": ... | null, "text": ..., "kind": ...,
     "importance": ..., "created_at": ...}
    {"v": 1, "op": "forget", "id": ..., "player": ..., "character": ... | null}

A line is everything needed to store the memory again (its vector is computed afresh). The next store opened
on the same journal applies the lines in order, then removes them. Several processes may share one journal
(several servers on one data directory): every change holds an exclusive lock on ``<journal>.lock``, and
rewrites (removing lines) go through a temporary file renamed over the journal, so a crash never leaves half a
journal. A torn last line (a crash during an append) is skipped with a warning.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from memory.errors import MemoryBackendError
from memory.types import Memory, MemoryKind

log = logging.getLogger(__name__)

_VERSION = 1
_KINDS = frozenset(get_args(MemoryKind))


@dataclass(frozen=True)
class Forget:
    """A forget that could not reach the database: applied before anything journaled after it."""

    id: str
    player: str
    character: str | None  # None: every character

    def covers(self, memory: Memory) -> bool:
        return memory.player == self.player and (self.character is None or memory.character == self.character)


Record = Memory | Forget


def compact(records: Sequence[Record]) -> list[Record]:
    """The records without repeats (the first of each id counts) and without the memories that a later forget
    deletes anyway (their text never reaches the database, nor the disk again)."""
    kept: list[Record] = []
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            continue
        seen.add(record.id)
        if isinstance(record, Forget):
            kept = [r for r in kept if not (isinstance(r, Memory) and record.covers(r))]
        kept.append(record)
    return kept


def apply(
    records: Sequence[Record],
    write_batch: Callable[[list[Memory]], None],
    forget: Callable[[str, str | None], object],
    *,
    batch: int,
) -> int:
    """Apply records in order (consecutive memories ``batch`` at a time); returns how many were applied before
    one failed (the failure is logged), or all of them."""
    done = 0
    try:
        while done < len(records):
            head = records[done]
            if isinstance(head, Forget):
                forget(head.player, head.character)
                done += 1
                continue
            memories: list[Memory] = []
            for record in records[done : done + batch]:
                if not isinstance(record, Memory):
                    break
                memories.append(record)
            write_batch(memories)
            done += len(memories)
    except Exception:
        log.warning("memory journal replay failed; its writes are queued for retry", exc_info=True)
    return done


class Journal:
    """Append-only JSON lines at ``path`` (created on the first append, with its folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def append(self, records: Sequence[Record]) -> None:
        """Append and fsync; raises MemoryBackendError when the journal cannot be written."""
        if not records:
            return
        data = "".join(_encode(r) + "\n" for r in records).encode("utf-8")
        try:
            with self._locked():
                created = not self.path.exists()
                with self.path.open("ab+") as f:
                    if f.seek(0, os.SEEK_END) > 0:
                        f.seek(-1, os.SEEK_END)
                        if f.read(1) != b"\n":  # a torn line from a crash: ours starts on a line of its own
                            data = b"\n" + data
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                if created:
                    _fsync_dir(self.path.parent)
        except OSError as exc:
            raise MemoryBackendError(f"cannot write the memory journal {self.path}: {exc}") from exc

    def read(self) -> list[Record]:
        """Every record, in the order written (nothing when there is no journal)."""
        if not self.path.exists():
            return []
        with self._locked():
            return self._read_unlocked()

    def remove(self, ids: Collection[str]) -> int:
        """Delete the records with these ids; returns how many lines went."""
        wanted = set(ids)
        return self._rewrite(lambda r: r.id in wanted) if wanted else 0

    def purge(self, player: str, character: str | None) -> int:
        """Delete the journaled memories of ``player`` (of every character unless one is given)."""
        target = Forget("", player, character)
        return self._rewrite(lambda r: isinstance(r, Memory) and target.covers(r))

    # -- internals ---------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read_unlocked(self) -> list[Record]:
        records: list[Record] = []
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(_decode(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                log.warning("memory journal line unreadable; skipped", extra={"line": number})
        return records

    def _rewrite(self, drop: Callable[[Record], bool]) -> int:
        if not self.path.exists():
            return 0
        try:
            with self._locked():
                records = self._read_unlocked()
                kept = [r for r in records if not drop(r)]
                if len(kept) == len(records):
                    return 0
                tmp = self.path.with_name(self.path.name + ".tmp")
                with tmp.open("wb") as f:
                    f.write("".join(_encode(r) + "\n" for r in kept).encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                _fsync_dir(self.path.parent)
                return len(records) - len(kept)
        except OSError as exc:
            raise MemoryBackendError(f"cannot rewrite the memory journal {self.path}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(record: Record) -> str:
    if isinstance(record, Forget):
        fields: dict[str, Any] = {"op": "forget", "id": record.id, "player": record.player}
        fields["character"] = record.character
    else:
        fields = {
            "op": "add",
            "id": record.id,
            "character": record.character,
            "player": record.player,
            "text": record.text,
            "kind": record.kind,
            "importance": record.importance,
            "created_at": record.created_at,
        }
    return json.dumps({"v": _VERSION, **fields}, ensure_ascii=False, separators=(",", ":"))


def _decode(obj: Any) -> Record:
    if not isinstance(obj, dict) or obj.get("v") != _VERSION:
        raise ValueError("not a journal record of this version")
    if obj["op"] == "forget":
        character = obj["character"]
        player = str(obj["player"])
        return Forget(id=str(obj["id"]), player=player, character=None if character is None else str(character))
    if obj["op"] != "add" or obj["kind"] not in _KINDS:
        raise ValueError("unknown journal operation")
    player = obj["player"]
    return Memory(
        id=str(obj["id"]),
        character=str(obj["character"]),
        player=None if player is None else str(player),
        text=str(obj["text"]),
        kind=obj["kind"],
        importance=float(obj["importance"]),
        created_at=float(obj["created_at"]),
    )
