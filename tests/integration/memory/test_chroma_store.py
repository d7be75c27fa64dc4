"""ChromaMemoryStore on a real ChromaDB on disk (the model-free hashing embedder keeps these fast)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from chromadb.api.shared_system_client import SharedSystemClient

from memory import ChromaMemoryStore, HashingEmbedder, MemoryClosedError, MemoryInputError, MemoryRecallError

pytestmark = pytest.mark.integration

OpenStore = Callable[..., ChromaMemoryStore]  # the open_store fixture


class GatedEmbedder(HashingEmbedder):
    """Blocks every embed() until ``gate`` is set (a backend that is slow or stuck)."""

    def __init__(self) -> None:
        super().__init__(128)
        self.gate = threading.Event()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.gate.wait()
        return super().embed(texts)


async def test_player_b_never_receives_player_a_memories(store: ChromaMemoryStore) -> None:
    secrets = [f"alice hid the dragon gold under stone {i}" for i in range(30)]
    for text in secrets:
        await store.remember("smith", "alice", text, importance=1.0)
    await store.remember("smith", "bob", "bob wants a shield")
    await store.remember("smith", None, "the smithy is by the river", kind="world")
    await store.remember("baker", "bob", "bob likes rye bread")
    await store.flush()

    for query in [secrets[0], "dragon gold", "where is the gold hidden"]:
        got = await store.recall("smith", "bob", query, k=20, budget_s=30)
        assert {(r.memory.player, r.memory.text) for r in got} == {
            ("bob", "bob wants a shield"),
            (None, "the smithy is by the river"),
        }
    listed = await store.list("smith", "bob")
    assert {(m.player, m.text) for m in listed} == {("bob", "bob wants a shield"), (None, "the smithy is by the river")}
    assert all(m.player != "alice" for m in await store.list(None, "bob", limit=1000))
    # alice does get her own memories back, best match first
    got = await store.recall("smith", "alice", secrets[7], k=3, budget_s=30)
    assert got[0].memory.text == secrets[7]
    assert got[0].similarity == pytest.approx(1.0, abs=1e-4)


async def test_world_facts_are_seen_by_every_player_of_that_character_only(store: ChromaMemoryStore) -> None:
    await store.remember("smith", None, "the king taxes swords", kind="world")
    await store.remember("baker", None, "flour is scarce this winter", kind="world")
    await store.flush()
    for player in ("alice", "bob"):
        got = await store.recall("smith", player, "taxes", k=5, budget_s=30)
        assert [r.memory.text for r in got] == ["the king taxes swords"]
        assert got[0].memory.player is None and got[0].memory.kind == "world"


async def test_forget_removes_every_memory_of_the_player_and_nothing_else(store: ChromaMemoryStore) -> None:
    await store.remember("smith", "alice", "alice bought a sword")
    await store.remember("smith", "alice", "alice paid ten gold")
    await store.remember("baker", "alice", "alice bought bread")
    await store.remember("smith", "bob", "bob bought a sword")
    await store.remember("smith", None, "swords cost ten gold", kind="world")
    await store.flush()

    assert await store.forget("alice") == 3
    remaining = await store.list(None, None, limit=1000)
    assert {(m.character, m.player, m.text) for m in remaining} == {
        ("smith", None, "swords cost ten gold"),
        ("smith", "bob", "bob bought a sword"),
    }
    assert await store.recall("smith", "alice", "sword", k=10, budget_s=30) != []  # only the world fact
    assert all(r.memory.player is None for r in await store.recall("smith", "alice", "sword", k=10, budget_s=30))
    assert await store.forget("alice") == 0


async def test_forget_one_character_keeps_the_players_other_characters(store: ChromaMemoryStore) -> None:
    await store.remember("smith", "alice", "alice bought a sword")
    await store.remember("baker", "alice", "alice bought bread")
    assert await store.forget("alice", "smith") == 1  # also covers a write still queued
    assert [m.text for m in await store.list(None, "alice")] == ["alice bought bread"]


async def test_forget_also_removes_writes_still_queued(tmp_path: Path, open_store: OpenStore) -> None:
    embedder = GatedEmbedder()
    store = open_store(tmp_path / "chroma", embedder=embedder)
    for i in range(5):
        await store.remember("smith", "alice", f"queued memory {i}")
    assert store.pending_writes > 0
    forgotten = store.forget("alice")
    embedder.gate.set()
    assert await forgotten == 5
    assert await store.list(None, None) == []
    await store.close()


async def test_reopen_in_a_new_persistent_client_keeps_everything(tmp_path: Path, open_store: OpenStore) -> None:
    path = tmp_path / "chroma"
    first = open_store(path)
    ids = [await first.remember("smith", "alice", f"memory number {i}", importance=i / 10) for i in range(10)]
    await first.remember("smith", None, "a world fact", kind="world")
    await first.flush()
    before = await first.list(None, None, limit=1000)
    await first.close()
    # the embedded database is really released: the next client starts a fresh Chroma system on the folder
    assert str(path) not in SharedSystemClient._identifier_to_system

    second = open_store(path)
    after = await second.list(None, None, limit=1000)
    assert after == before
    assert {m.id for m in after} >= set(ids)
    got = await second.recall("smith", "alice", "memory number 3", k=1, budget_s=30)
    assert got[0].memory.id == ids[3]
    assert got[0].memory.importance == pytest.approx(0.3)
    await second.close()


async def test_writes_queued_at_close_are_persisted(tmp_path: Path, open_store: OpenStore) -> None:
    path = tmp_path / "chroma"
    embedder = GatedEmbedder()
    store = open_store(path, embedder=embedder, write_batch=16)
    for i in range(200):
        await store.remember("smith", f"player{i % 3}", f"queued text {i}")
    assert store.pending_writes > 0  # the writer is stuck on its first batch: the rest is still queued
    embedder.gate.set()
    await store.close()
    assert store.failed_writes == 0

    reopened = open_store(path)
    assert reopened.count() == 200
    assert len(await reopened.list(None, "player1", limit=1000)) == 67
    await reopened.close()


async def test_recall_over_budget_says_so_instead_of_waiting(tmp_path: Path, open_store: OpenStore) -> None:
    embedder = GatedEmbedder()
    embedder.gate.set()
    store = open_store(tmp_path / "chroma", embedder=embedder)
    await store.remember("smith", "alice", "alice bought a sword")
    await store.flush()
    embedder.gate.clear()  # the embedder is now stuck
    try:
        with pytest.raises(MemoryRecallError) as info:  # degraded, not "alice has no memories"
            await store.recall("smith", "alice", "sword", k=3, budget_s=0.05)
        assert info.value.reason == "timeout"
    finally:
        embedder.gate.set()
    got = await store.recall("smith", "alice", "sword", k=3, budget_s=30)
    assert [r.memory.text for r in got] == ["alice bought a sword"]
    await store.close()


async def test_recall_ranks_by_recency_and_importance(tmp_path: Path, open_store: OpenStore) -> None:
    now = [1_000_000.0]
    store = open_store(tmp_path / "chroma")
    store._clock = lambda: now[0]  # noqa: SLF001  (an injected clock; ChromaMemoryStore(clock=...) in production)
    await store.remember("smith", "alice", "the red gem")  # old
    now[0] += 10 * 24 * 3600
    await store.remember("smith", "alice", "the red gem!")  # new, same words
    await store.remember("smith", "alice", "the red gem?", importance=1.0)  # new and important
    await store.flush()
    got = await store.recall("smith", "alice", "red gem", k=3, budget_s=30)
    assert [r.memory.text for r in got] == ["the red gem?", "the red gem!", "the red gem"]
    assert got[0].score > got[1].score > got[2].score
    assert {round(r.similarity, 4) for r in got} == {round(got[0].similarity, 4)}


async def test_a_closed_store_refuses_use(store: ChromaMemoryStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(MemoryClosedError):
        await store.remember("smith", "alice", "too late")
    with pytest.raises(MemoryClosedError):
        await store.recall("smith", "alice", "x", k=1, budget_s=1)


@pytest.mark.parametrize(
    ("character", "player", "text", "importance"),
    [("", "alice", "t", 0.5), ("smith", "", "t", 0.5), ("smith", "alice", "  ", 0.5), ("smith", "alice", "t", 1.5)],
)
async def test_invalid_memories_are_refused(
    store: ChromaMemoryStore, character: str, player: str, text: str, importance: float
) -> None:
    with pytest.raises(MemoryInputError):
        await store.remember(character, player, text, importance=importance)


async def test_warm_loads_a_conversation_whether_or_not_it_has_memories(store: ChromaMemoryStore) -> None:
    await store.warm("smith", "nobody-yet")  # nothing stored: nothing to load, no error
    await store.remember("smith", "alice", "alice likes axes")
    await store.remember("smith", None, "axes are on the wall", kind="world")
    await store.flush()
    await store.warm("smith", "alice")
    got = await store.recall("smith", "alice", "axes", k=5, budget_s=30)
    assert {r.memory.text for r in got} == {"alice likes axes", "axes are on the wall"}
