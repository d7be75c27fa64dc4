"""memory/: the memory store protocol, its ChromaDB implementation, embeddings and reflection.

Imports nothing of llmasos, voice, dialogue or rtc.
"""

from memory.chroma_store import ChromaMemoryStore, ChromaStoreOptions
from memory.embedder import HashingEmbedder, SentenceTransformerEmbedder
from memory.errors import (
    EmbeddingError,
    MemoryBackendError,
    MemoryClosedError,
    MemoryInputError,
    MemoryRecallError,
    MemoryStoreError,
    RecallFailure,
)
from memory.ranking import RankOptions
from memory.reflection import ReflectionOptions, Reflector, Summarise
from memory.types import Embedder, Memory, MemoryKind, MemoryStore, Recalled
from memory.writer import RetryPolicy

__all__ = [
    "ChromaMemoryStore",
    "ChromaStoreOptions",
    "Embedder",
    "EmbeddingError",
    "HashingEmbedder",
    "Memory",
    "MemoryBackendError",
    "MemoryClosedError",
    "MemoryInputError",
    "MemoryKind",
    "MemoryRecallError",
    "MemoryStore",
    "MemoryStoreError",
    "RankOptions",
    "RecallFailure",
    "Recalled",
    "ReflectionOptions",
    "Reflector",
    "RetryPolicy",
    "SentenceTransformerEmbedder",
    "Summarise",
]
