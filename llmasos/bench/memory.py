"""Memory benchmark: recall latency by store size and write throughput, on the embedded ChromaDB.

Method (stated in the result's ``method``):

- write throughput: ``remember()`` of generated sentences through the real store (background writer, real
  MiniLM embeddings, Chroma on disk), two per turn from 10 interleaved conversations, timed from the first
  call until ``flush()`` returns; plus how long each ``remember()`` call held the event loop. Each Chroma add
  call has a fixed cost (tens of ms, growing with the database), and a batch makes one call per player in it.
- recall: the store is filled to each size with synthetic unit vectors (random, 384-d) in bulk, because
  embedding 100k texts takes minutes on a small CPU; memories are spread over 10 characters x 200 players,
  with 5% world facts. Each recall is the real path: MiniLM embeds the query text, Chroma runs the filtered
  query (the player's collection filtered on the character, and the character's world facts), the
  candidates are re-ranked. Latency is end to end around ``recall()`` with a large budget (measured, not cut
  short). Each query pair is a conversation's first recall (its collections still cold: ``first_recall``)
  and a later one (``recall``); ``over_budget`` counts those over ``memory.recall_budget_ms``. A server
  hides the first-recall cost by calling ``warm()`` when a conversation opens.

Runs in a temporary database; nothing is written to the data directory.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmasos.bench import machine, percentile
from llmasos.memory_factory import load_embedder, store_options
from llmasos.settings import Settings
from memory import ChromaMemoryStore, Embedder, Memory
from memory.chroma_client import open_persistent

CHARACTERS = 10
PLAYERS = 200
WORLD_SHARE = 0.05
WRITE_CONVERSATIONS = 10  # concurrent conversations in the write benchmark
FILL_CHUNK = 10_000
_SUBJECTS = ["the smith", "a traveller", "the captain", "my sister", "the old miller", "a stranger", "the guard"]
_VERBS = ["bought", "lost", "repaired", "hid", "found", "sold", "promised", "asked about"]
_OBJECTS = ["a steel sword", "three apples", "the harbour map", "a silver ring", "an iron shield", "a cask of ale"]
_PLACES = ["near the river", "at the market", "in the old mine", "behind the chapel", "on the north road"]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_PLACES)}."


def bench_memory(
    settings: Settings,
    sizes: list[int],
    *,
    queries: int = 50,
    writes: int = 300,
    embedder: Embedder | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    """Recall p50/p95 at each size and write throughput; see the module docstring for the method."""
    started = time.perf_counter()
    t0 = time.perf_counter()
    embedder = embedder if embedder is not None else load_embedder(settings)
    load_s = time.perf_counter() - t0
    budget_s = settings.memory.recall_budget_ms / 1000
    with tempfile.TemporaryDirectory(prefix="llmasos-bench-memory-") as tmp:
        write = asyncio.run(_bench_writes(settings, embedder, Path(tmp) / "writes", writes, seed))
        recall = asyncio.run(_bench_recall(settings, embedder, Path(tmp) / "recall", sizes, queries, budget_s, seed))
    result: dict[str, Any] = {
        "status": "ok",
        "machine": machine(),
        "method": (
            "recall: bulk fill with synthetic unit vectors (random, embedder dimension), "
            f"{CHARACTERS} characters x {PLAYERS} players, {WORLD_SHARE:.0%} world facts; real MiniLM "
            "embedding of every query text; end-to-end recall() latency (embed + Chroma queries + rerank), "
            "for a conversation's first recall (cold collections) and a later one. "
            f"writes: remember() of generated sentences, two per turn from {WRITE_CONVERSATIONS} interleaved "
            "conversations, real MiniLM embeddings, until flush() returns."
        ),
        "embedder_load_s": round(load_s, 2),
        "top_k": settings.memory.top_k,
        "candidates": settings.memory.candidates,
        "recall_budget_ms": settings.memory.recall_budget_ms,
        "write": write,
        "recall": recall,
        "total_s": round(time.perf_counter() - started, 1),
    }
    result["markdown"] = _markdown(result)
    return result


def _open(settings: Settings, embedder: Embedder, path: Path) -> ChromaMemoryStore:
    return ChromaMemoryStore(open_persistent(path), embedder, store_options(settings))


async def _bench_writes(settings: Settings, embedder: Embedder, path: Path, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    texts = [sentence(rng) for _ in range(n)]
    store = _open(settings, embedder, path)
    try:
        call_ms: list[float] = []
        t0 = time.perf_counter()
        for i, text in enumerate(texts):
            c0 = time.perf_counter()
            turn = i // 2  # two memories per turn (what the player said, what they heard)
            conversation = turn % WRITE_CONVERSATIONS
            await store.remember(f"character{conversation % CHARACTERS}", f"player{conversation}", text)
            call_ms.append((time.perf_counter() - c0) * 1000)
        await store.flush()
        elapsed = time.perf_counter() - t0
        stored = store.count()
    finally:
        await store.close()
    return {
        "memories": n,
        "stored": stored,
        "seconds": round(elapsed, 2),
        "memories_per_s": round(n / elapsed, 1),
        "remember_call_ms_p50": round(percentile(call_ms, 50), 4),
        "remember_call_ms_p95": round(percentile(call_ms, 95), 4),
        "write_batch": settings.memory.write_batch,
        "conversations": WRITE_CONVERSATIONS,
    }


async def _bench_recall(
    settings: Settings, embedder: Embedder, path: Path, sizes: list[int], queries: int, budget_s: float, seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    store = _open(settings, embedder, path)
    rows: list[dict[str, Any]] = []
    filled = 0
    try:
        for size in sorted(set(sizes)):
            t0 = time.perf_counter()
            await asyncio.to_thread(_fill, store, embedder.dimension, filled, size, rng, np_rng)
            fill_s = time.perf_counter() - t0
            filled = size
            cold: list[float] = []
            warm: list[float] = []
            found = 0
            for i in range(queries + 2):
                character, player = f"character{i % CHARACTERS}", f"player{rng.randrange(PLAYERS)}"
                for timings in (cold, warm):  # a conversation's first recall, then a later one
                    text = f"do you remember when {sentence(rng)}"
                    q0 = time.perf_counter()
                    got = await store.recall(character, player, text, k=max(1, settings.memory.top_k), budget_s=60.0)
                    if i >= 2:  # the first two warm up the model and caches
                        timings.append((time.perf_counter() - q0) * 1000)
                        found += len(got)
            embed_ms = _embed_ms(embedder, [sentence(rng) for _ in range(20)])
            rows.append(
                {
                    "size": size,
                    "fill_s": round(fill_s, 1),
                    "fill_per_s": round((size - (rows[-1]["size"] if rows else 0)) / fill_s, 1) if fill_s else None,
                    "queries": len(warm),
                    "recall_ms_p50": round(percentile(warm, 50), 2),
                    "recall_ms_p95": round(percentile(warm, 95), 2),
                    "first_recall_ms_p50": round(percentile(cold, 50), 2),
                    "first_recall_ms_p95": round(percentile(cold, 95), 2),
                    "query_embed_ms_p50": round(embed_ms, 2),
                    "over_budget": sum(1 for x in warm if x > budget_s * 1000),
                    "first_over_budget": sum(1 for x in cold if x > budget_s * 1000),
                    "mean_results": round(found / max(1, 2 * len(warm)), 2),
                }
            )
    finally:
        await store.close()
    return rows


def _fill(
    store: ChromaMemoryStore, dim: int, start: int, end: int, rng: random.Random, np_rng: np.random.Generator
) -> None:
    now = time.time()
    for first in range(start, end, FILL_CHUNK):
        n = min(FILL_CHUNK, end - first)
        vectors = np_rng.standard_normal((n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        memories: list[Memory] = []
        for j in range(n):
            world = rng.random() < WORLD_SHARE
            memories.append(
                Memory(
                    id=f"bench-{first + j}",
                    character=f"character{rng.randrange(CHARACTERS)}",
                    player=None if world else f"player{rng.randrange(PLAYERS)}",
                    text=sentence(rng),
                    kind="world" if world else "heard",
                    importance=round(rng.random(), 2),
                    created_at=now - rng.random() * 30 * 86400,
                )
            )
        store.bulk_add(memories, vectors.tolist())


def _embed_ms(embedder: Embedder, texts: list[str]) -> float:
    times = []
    for text in texts:
        t0 = time.perf_counter()
        embedder.embed([text])
        times.append((time.perf_counter() - t0) * 1000)
    return percentile(times, 50)


def _markdown(result: dict[str, Any]) -> str:
    w = result["write"]
    lines = [
        f"Method: {result['method']}",
        "",
        "| memories | recall p50 / p95 ms | first recall of a conversation p50 / p95 ms | query embedding p50 ms "
        f"| over budget ({result['recall_budget_ms']} ms): later / first | fill /s |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["recall"]:
        lines.append(
            f"| {r['size']:,} | {r['recall_ms_p50']} / {r['recall_ms_p95']} "
            f"| {r['first_recall_ms_p50']} / {r['first_recall_ms_p95']} | {r['query_embed_ms_p50']} "
            f"| {r['over_budget']} / {r['first_over_budget']} of {r['queries']} | {r['fill_per_s']} |"
        )
    lines += [
        "",
        f"Writes (real embeddings, end to end): {w['memories_per_s']} memories/s "
        f"({w['memories']} in {w['seconds']} s); "
        f"remember() holds the event loop {w['remember_call_ms_p50']} ms p50 / {w['remember_call_ms_p95']} ms p95.",
    ]
    return "\n".join(lines)


__all__ = ["bench_memory"]
