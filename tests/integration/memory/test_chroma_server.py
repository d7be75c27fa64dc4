"""The store against a real `chroma run` server on loopback (HttpClient), opened through the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.memory_factory import open_memory
from llmasos.settings import Settings
from memory import HashingEmbedder, MemoryBackendError
from memory.chroma_client import open_http

pytestmark = pytest.mark.integration


async def test_server_store_keeps_players_apart_forgets_and_persists(chroma_server: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", memory={"chroma_url": chroma_server})
    embedder = HashingEmbedder(128)
    store = open_memory(settings, embedder=embedder)
    await store.remember("smith", "alice", "alice hid the dragon gold in the well")
    await store.remember("smith", "bob", "bob wants a shield")
    await store.remember("smith", None, "the smithy is by the river", kind="world")
    await store.flush()
    got = await store.recall("smith", "bob", "alice hid the dragon gold in the well", k=10, budget_s=30)
    assert {r.memory.text for r in got} == {"bob wants a shield", "the smithy is by the river"}
    await store.close()
    assert not (tmp_path / "data" / "chroma").exists()  # nothing went to the embedded database

    # a second store (another server process would do the same) sees what the first one wrote
    second = open_memory(settings, embedder=embedder)
    assert second.count() == 3
    assert await second.forget("alice") == 1
    assert {m.text for m in await second.list("smith", None)} == {"bob wants a shield", "the smithy is by the river"}
    await second.close()


def test_an_unreachable_server_is_a_clear_retryable_error(chroma_server: str) -> None:
    dead = chroma_server.rsplit(":", 1)[0] + ":1"
    with pytest.raises(MemoryBackendError, match="cannot reach the Chroma server") as info:
        open_http(dead)
    assert info.value.retryable


async def test_a_player_forgotten_by_another_process_is_gone_for_this_one_too(
    chroma_server: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", memory={"chroma_url": chroma_server})
    embedder = HashingEmbedder(128)
    here = open_memory(settings, embedder=embedder)
    there = open_memory(settings, embedder=embedder)  # stands for a second server process
    try:
        await here.remember("smith", "alice", "alice hid the gold")
        await here.flush()
        assert len(await here.recall("smith", "alice", "gold", k=3, budget_s=30)) == 1  # `here` now holds a handle
        assert await there.forget("alice") == 1
        # `here` must neither resurrect nor lose anything: its stale handle is replaced on first use
        assert await here.recall("smith", "alice", "gold", k=3, budget_s=30) == []
        await here.remember("smith", "alice", "alice came back for her sword")
        await here.flush()
        assert here.failed_writes == 0
        got = await there.recall("smith", "alice", "sword", k=3, budget_s=30)
        assert [r.memory.text for r in got] == ["alice came back for her sword"]
    finally:
        await here.close()
        await there.close()
