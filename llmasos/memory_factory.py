"""Wiring memory/ from the settings: the packaged embedding model, the Chroma client, the store, reflection.

``open_memory(settings)`` is what the server and the CLI call (blocking: it loads the model and opens the
database; call it at start-up or in a thread). The embedder is heavy and shared: load it once with
``load_embedder`` and pass it to every store opened afterwards.
"""

from __future__ import annotations

from pathlib import Path

from llmasos.models import ModelStore, Role, resolve
from llmasos.settings import Device, Settings
from memory import (
    ChromaMemoryStore,
    ChromaStoreOptions,
    Embedder,
    RankOptions,
    ReflectionOptions,
    Reflector,
    SentenceTransformerEmbedder,
    Summarise,
)
from memory.chroma_client import close_client, open_http, open_persistent


def chroma_dir(settings: Settings) -> Path:
    """Where the embedded database lives."""
    return settings.data_dir / "chroma"


def journal_path(settings: Settings) -> Path:
    """Where writes the database could not take before the store closed wait for the next start."""
    return settings.data_dir / "memory-journal.jsonl"


def load_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """The packaged MiniLM (sha256-verified), or the user's ``embeddings.model_dir``."""
    path = resolve(ModelStore(settings.data_dir), Role.EMBEDDINGS, None, settings.embeddings.model_dir)
    return SentenceTransformerEmbedder(
        path, device=_device(settings.embeddings.device), batch_size=settings.embeddings.batch_size
    )


def store_options(settings: Settings) -> ChromaStoreOptions:
    m = settings.memory
    return ChromaStoreOptions(
        collection=m.collection,
        candidates=m.candidates,
        write_batch=m.write_batch,
        journal=journal_path(settings),
        rank=RankOptions(
            weight_similarity=m.weight_similarity,
            weight_recency=m.weight_recency,
            weight_importance=m.weight_importance,
            half_life_s=m.half_life_hours * 3600.0,
        ),
    )


def open_memory(settings: Settings, embedder: Embedder | None = None) -> ChromaMemoryStore:
    """The memory store: a Chroma server when ``memory.chroma_url`` is set, else the embedded database.

    Writes journaled by an earlier store (the database was unreachable when it closed) are applied first.
    """
    url = settings.memory.chroma_url
    client = open_http(url) if url else open_persistent(chroma_dir(settings))
    try:
        if embedder is None:
            embedder = load_embedder(settings)
        return ChromaMemoryStore(client, embedder, store_options(settings))
    except BaseException:
        close_client(client)
        raise


def open_reflector(settings: Settings, store: ChromaMemoryStore, summarise: Summarise) -> Reflector | None:
    """Reflection over ``store`` with the LLM's ``summarise``; None when ``memory.reflect_every`` is 0."""
    if settings.memory.reflect_every == 0:
        return None
    return Reflector(store, summarise, ReflectionOptions(every=settings.memory.reflect_every))


def _device(device: Device) -> str | None:
    return None if device == "auto" else device  # None: sentence-transformers picks CUDA when present
