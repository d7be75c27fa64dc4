"""`llmasos memory search|forget` as subprocesses, offline, on a database written earlier by the store."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from llmasos.memory_factory import open_memory
from llmasos.settings import Settings
from memory import Memory, SentenceTransformerEmbedder

pytestmark = pytest.mark.integration


async def _write(data_dir: Path, embedder: SentenceTransformerEmbedder) -> None:
    store = open_memory(Settings(data_dir=data_dir), embedder=embedder)
    await store.remember("smith", "alice", "Alice ordered a silver dagger with a wolf engraving.", importance=0.9)
    await store.remember("smith", "alice", "Alice complained about the rain.")
    await store.remember("smith", "bob", "Bob ordered a silver dagger with a wolf engraving.")
    await store.close()  # no flush: close() stores what is queued


async def _list(data_dir: Path, embedder: SentenceTransformerEmbedder) -> list[Memory]:
    store = open_memory(Settings(data_dir=data_dir), embedder=embedder)
    try:
        return await store.list(None, None)
    finally:
        await store.close()


def test_cli_search_finds_an_earlier_memory_and_forget_deletes_it(
    data_dir: Path, cli_env: dict[str, str], llmasos_cmd: list[str], minilm: SentenceTransformerEmbedder
) -> None:
    asyncio.run(_write(data_dir, minilm))

    search = [*llmasos_cmd, "memory", "search", "which knife did I order?", "--character", "smith", "--player", "alice"]
    out = subprocess.run([*search, "-k", "1"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["SCORE", "SIM"]
    assert "Alice ordered a silver dagger with a wolf engraving." in lines[1]
    assert " alice " in lines[1] and "Bob" not in out.stdout
    score, similarity = (float(x) for x in lines[1].split()[:2])
    assert 0.0 < score <= 1.0 and 0.0 < similarity <= 1.0
    assert lines[-1] == "1 memories"

    forget = [*llmasos_cmd, "memory", "forget", "--player", "alice"]
    out = subprocess.run(forget, env=cli_env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "deleted 2 memories"

    assert [m.player for m in asyncio.run(_list(data_dir, minilm))] == ["bob"]
