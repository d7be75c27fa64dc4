"""Recall by meaning with the packaged MiniLM on a real ChromaDB on disk, through the factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.memory_factory import open_memory
from llmasos.settings import Settings
from memory import SentenceTransformerEmbedder

pytestmark = pytest.mark.integration


def test_minilm_gives_384_d_unit_vectors(minilm: SentenceTransformerEmbedder) -> None:
    [v] = minilm.embed(["hello there"])
    assert minilm.dimension == 384 and len(v) == 384
    assert sum(x * x for x in v) == pytest.approx(1.0, abs=1e-4)


async def test_recall_finds_a_paraphrase(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    store = open_memory(Settings(data_dir=tmp_path), embedder=minilm)
    try:
        facts = [
            "Alice bought a steel longsword for ten gold coins.",
            "Alice's brother is a fisherman in the harbour town.",
            "Alice is afraid of spiders since childhood.",
            "Alice promised to bring iron ore next week.",
        ]
        for text in facts:
            await store.remember("smith", "alice", text)
        await store.remember("smith", "bob", "Bob bought a steel longsword for ten gold coins.")
        await store.flush()
        got = await store.recall("smith", "alice", "What weapon did I purchase from you?", k=2, budget_s=30)
        assert got[0].memory.text == facts[0]
        assert got[0].similarity > got[1].similarity
        got = await store.recall("smith", "alice", "Which creatures scare me?", k=1, budget_s=30)
        assert [r.memory.text for r in got] == [facts[2]]
        assert all(r.memory.player == "alice" for r in await store.recall("smith", "alice", "sword", k=10, budget_s=30))
    finally:
        await store.close()
