"""Writes are never lost: a Chroma server that goes away, a store closed while it is away, a SIGKILL mid-write.

Real ChromaDB throughout: a `chroma run` server stopped and started again on the same port and folder, and the
embedded PersistentClient in a process killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from llmasos.memory_factory import journal_path, open_memory
from llmasos.settings import Settings
from memory import (
    ChromaMemoryStore,
    ChromaStoreOptions,
    EmbeddingError,
    HashingEmbedder,
    Memory,
    MemoryBackendError,
    MemoryRecallError,
    RetryPolicy,
)
from memory.chroma_client import open_http, open_persistent
from memory.journal import Forget, Journal

if TYPE_CHECKING:
    from tests.integration.memory.conftest import ChromaServer  # the chroma_process fixture

pytestmark = pytest.mark.integration

EMBEDDER = HashingEmbedder(128)


class LogSeen(logging.Handler):
    """Sets ``event`` when a log record with ``message`` is emitted (the writer's thread logs it)."""

    def __init__(self, message: str) -> None:
        super().__init__(logging.DEBUG)
        self.message = message
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.event.set()


@pytest.fixture
def write_failed() -> Iterator[threading.Event]:
    """Set once the writer has failed a write and waits to retry it."""
    seen = LogSeen("memory write failed; will retry")
    logger = logging.getLogger("memory.writer")
    logger.addHandler(seen)
    try:
        yield seen.event
    finally:
        logger.removeHandler(seen)


def server_settings(tmp_path: Path, server: ChromaServer) -> Settings:
    return Settings(data_dir=tmp_path / "data", memory={"chroma_url": server.url})


async def test_writes_wait_for_a_stopped_server_and_land_when_it_is_back(
    chroma_process: ChromaServer, tmp_path: Path, write_failed: threading.Event
) -> None:
    options = ChromaStoreOptions(retry=RetryPolicy(initial_s=0.05, max_s=0.2), journal=tmp_path / "journal.jsonl")
    store = ChromaMemoryStore(open_http(chroma_process.url), EMBEDDER, options)
    try:
        await store.remember("smith", "alice", "alice bought a sword")
        await store.flush()

        chroma_process.stop()
        budget_s = 0.3
        with pytest.raises(MemoryRecallError):  # a down backend is reported, within the budget of a reply
            await store.recall("smith", "alice", "sword", k=3, budget_s=budget_s)

        texts = [f"{p} asked about the {thing}" for p in ("alice", "bob") for thing in ("axe", "shield", "helmet")]
        ids = [await store.remember("smith", t.split()[0], t) for t in texts]
        ids.append(await store.remember("smith", None, "the forge is cold today", kind="world"))
        assert await asyncio.to_thread(write_failed.wait, 30)
        assert store.failed_writes > 0 and store.pending_writes > 0  # queued, not dropped
        with pytest.raises(MemoryRecallError):
            await store.recall("smith", "bob", "axe", k=3, budget_s=budget_s)

        chroma_process.start()  # same port, same folder
        await asyncio.wait_for(store.flush(), 60)
        assert (store.failed_writes, store.pending_writes, store.journaled_writes) == (0, 0, 0)
        assert store.count() == 8
        got = await store.recall("smith", "bob", "bob asked about the shield", k=2, budget_s=30)
        assert got[0].memory.text == "bob asked about the shield"
        assert {m.id for m in await store.list(None, None, limit=100)} >= set(ids)
    finally:
        await store.close()
    assert not (tmp_path / "journal.jsonl").exists()  # nothing had to be journaled


async def test_writes_still_unstored_at_close_are_journaled_and_replayed_by_the_next_open(
    chroma_process: ChromaServer, tmp_path: Path, write_failed: threading.Event
) -> None:
    settings = server_settings(tmp_path, chroma_process)
    store = open_memory(settings, embedder=EMBEDDER)
    await store.remember("smith", "alice", "alice bought a sword")
    await store.flush()

    chroma_process.stop()
    texts = [f"memory {i} of {p}" for i in range(5) for p in ("alice", "bob")]
    ids = [await store.remember("smith", t.split()[-1], t, importance=0.9) for t in texts]
    ids.append(await store.remember("smith", None, "the king visits on sunday", kind="world"))
    assert await asyncio.to_thread(write_failed.wait, 30)
    await store.close()  # the server never came back
    assert (store.journaled_writes, store.lost_writes) == (len(ids), 0)

    journal = journal_path(settings)
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ids  # in the order they were issued
    assert lines[0]["text"] == texts[0] and lines[0]["importance"] == 0.9 and lines[-1]["player"] is None

    chroma_process.start()
    reopened = open_memory(settings, embedder=EMBEDDER)  # applies the journal before it serves
    try:
        assert Journal(journal).read() == []
        assert reopened.count() == len(ids) + 1
        stored = {m.id: m for m in await reopened.list(None, None, limit=100)}
        assert set(ids) <= set(stored)
        assert stored[ids[0]].text == texts[0] and stored[ids[0]].importance == pytest.approx(0.9)
        assert stored[ids[-1]].player is None and stored[ids[-1]].kind == "world"
        got = await reopened.recall("smith", "bob", "memory 3 of bob", k=1, budget_s=30)
        assert [r.memory.id for r in got] == [ids[7]]
    finally:
        await reopened.close()


async def test_forget_removes_the_players_journal_entries_and_queued_writes(
    chroma_process: ChromaServer, tmp_path: Path, write_failed: threading.Event
) -> None:
    settings = server_settings(tmp_path, chroma_process)
    journal = journal_path(settings)
    serving = open_memory(settings, embedder=EMBEDDER)
    other = open_memory(settings, embedder=EMBEDDER)  # stands for a second server process on the same data
    try:
        await serving.remember("smith", "alice", "alice secret one: the gold is in the well")
        await serving.flush()

        chroma_process.stop()
        for i in range(3):
            await other.remember("smith", "alice", f"alice secret journaled {i}")
            await other.remember("smith", "bob", f"bob journaled {i}")
        await other.close()  # the server is away: the other process journals its writes
        assert "alice secret" in journal.read_text()

        await serving.remember("smith", "alice", "alice secret queued")
        await serving.remember("smith", "bob", "bob queued")
        assert await asyncio.to_thread(write_failed.wait, 30)
        journal_purged = threading.Event()
        purge = serving._journal.purge  # type: ignore[union-attr]

        def purge_and_tell(*args: Any) -> Any:
            try:
                return purge(*args)
            finally:
                journal_purged.set()

        serving._journal.purge = purge_and_tell  # type: ignore[union-attr,method-assign]
        forgetting = asyncio.create_task(serving.forget("alice"))
        assert await asyncio.to_thread(journal_purged.wait, 30)  # the forget has emptied the journal of alice
        records = await asyncio.to_thread(Journal(journal).read)
        assert {r.text for r in records if hasattr(r, "text")} == {f"bob journaled {i}" for i in range(3)}
        assert "alice" not in journal.read_text()
        assert not forgetting.done()  # the database itself is not reachable yet

        chroma_process.start()
        # 3 journaled + 1 queued + 1 in the database
        assert await asyncio.wait_for(forgetting, 60) == 5
        await serving.flush()
        assert [m.text for m in await serving.list(None, None, limit=100)] == ["bob queued"]
    finally:
        await serving.close()

    replayed = open_memory(settings, embedder=EMBEDDER)
    try:
        texts = {m.text for m in await replayed.list(None, None, limit=100)}
        assert texts == {"bob queued"} | {f"bob journaled {i}" for i in range(3)}
    finally:
        await replayed.close()


async def test_a_forget_the_database_never_saw_is_journaled_without_the_forgotten_text(
    chroma_process: ChromaServer, tmp_path: Path, write_failed: threading.Event
) -> None:
    settings = server_settings(tmp_path, chroma_process)
    store = open_memory(settings, embedder=EMBEDDER)
    await store.remember("smith", "alice", "alice's old secret")
    await store.flush()

    chroma_process.stop()
    await store.remember("smith", "alice", "alice's new secret")
    await store.remember("smith", "bob", "bob's news")
    assert await asyncio.to_thread(write_failed.wait, 30)
    forgetting = asyncio.create_task(store.forget("alice"))
    await asyncio.sleep(0)  # one loop step: the forget is queued
    await store.close()
    with pytest.raises(MemoryBackendError, match="journaled"):
        await forgetting
    text = journal_path(settings).read_text()
    assert "secret" not in text and "bob's news" in text

    chroma_process.start()
    reopened = open_memory(settings, embedder=EMBEDDER)  # replays: bob's memory, then the forget
    try:
        assert [m.text for m in await reopened.list(None, None, limit=100)] == ["bob's news"]
        assert await reopened.recall("smith", "alice", "secret", k=5, budget_s=30) == []
    finally:
        await reopened.close()


class FlakyEmbedder(HashingEmbedder):
    """Fails its first ``failures`` calls (a model that is not ready yet, a GPU out of memory for a moment)."""

    def __init__(self, failures: int) -> None:
        super().__init__(128)
        self.failures = failures

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.failures > 0:
            self.failures -= 1
            raise EmbeddingError("not now")
        return super().embed(texts)


async def test_a_replay_that_fails_at_open_does_not_stop_the_start_and_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    first = ChromaMemoryStore(open_persistent(path), HashingEmbedder(128))
    await first.remember("smith", "bob", "bob's memory from before")
    await first.close()
    journal = Journal(tmp_path / "journal.jsonl")
    journaled = [Memory(f"m{i}", "smith", "alice", f"journaled memory {i}", "heard", 0.5, 1000.0 + i) for i in range(3)]
    journal.append([*journaled, Forget("f1", "bob", None)])

    seen = LogSeen("memory journal replay failed; its writes are queued for retry")
    logging.getLogger("memory.journal").addHandler(seen)
    try:
        options = ChromaStoreOptions(retry=RetryPolicy(initial_s=0.01, max_s=0.01), journal=journal.path)
        store = ChromaMemoryStore(open_persistent(path), FlakyEmbedder(2), options)
    finally:
        logging.getLogger("memory.journal").removeHandler(seen)
    try:
        assert seen.event.is_set()  # it opened all the same
        await store.remember("smith", "bob", "bob's memory after the start")
        await store.flush()  # the journaled writes and forget, then the new write: in that order
        memories = await store.list(None, None, limit=100)
        assert [m.text for m in memories] == [
            "bob's memory after the start",
            "journaled memory 2",
            "journaled memory 1",
            "journaled memory 0",
        ]
        assert journal.read() == []  # stored: they left the journal
    finally:
        await store.close()


_WRITER = """
import asyncio, json, sys
from pathlib import Path
from llmasos.memory_factory import open_memory
from llmasos.settings import Settings
from memory import HashingEmbedder

async def main() -> None:
    store = open_memory(Settings(data_dir=Path(sys.argv[1])), embedder=HashingEmbedder(128))
    for n in range(100_000):
        batch = [(f"player{(n + i) % 3}", f"memory {n}.{i} about the forge") for i in range(4)]
        ids = [await store.remember("smith", p, t) for p, t in batch]
        await store.flush()
        print(json.dumps([[i, p, t] for i, (p, t) in zip(ids, batch)]), flush=True)

asyncio.run(main())
"""


def test_sigkill_during_writes_loses_nothing_that_was_confirmed(data_dir: Path, cli_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(data_dir)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(180, proc.kill)  # a hung writer ends the test instead of hanging it
    watchdog.start()
    confirmed: list[list[str]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            confirmed.extend(json.loads(line))
            if len(confirmed) >= 4 * 25:
                proc.send_signal(signal.SIGKILL)  # it is writing the next batch now
                break
    finally:
        watchdog.cancel()
        proc.kill()
        _, err = proc.communicate()
    assert len(confirmed) >= 100, err
    assert proc.returncode == -signal.SIGKILL

    async def reopen() -> None:
        store = open_memory(Settings(data_dir=data_dir), embedder=HashingEmbedder(128))
        try:
            stored = {m.id: m for m in await store.list(None, None, limit=100_000)}
            for id_, player, text in confirmed:
                assert id_ in stored and (stored[id_].player, stored[id_].text) == (player, text)
            id_, player, text = confirmed[-1]
            got = await store.recall("smith", player, text, k=1, budget_s=30)
            assert [r.memory.id for r in got] == [id_]
            await store.remember("smith", player, "written after the crash")
            await store.flush()
            assert [
                r.memory.text for r in await store.recall("smith", player, "after the crash", k=1, budget_s=30)
            ] == ["written after the crash"]
        finally:
            await store.close()

    asyncio.run(reopen())
