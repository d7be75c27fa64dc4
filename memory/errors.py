"""Errors raised by memory/.

    MemoryStoreError
    ├── MemoryInputError         an argument that cannot be stored (empty id, importance outside 0..1, ...)
    ├── MemoryClosedError        the store was used after close()
    ├── EmbeddingError           the embedding model could not be loaded or failed on a text
    ├── MemoryBackendError       ChromaDB failed or cannot be reached (has .retryable)
    └── MemoryRecallError        a recall could not answer: over its time budget or failed (has .reason)

Every message says what was wrong and, where it helps, what to do. (The root is not called ``MemoryError``:
that name is Python's out-of-memory error.)
"""

from __future__ import annotations

from typing import Literal

RecallFailure = Literal["timeout", "error"]


class MemoryStoreError(Exception):
    """Root of memory/'s errors."""


class MemoryInputError(MemoryStoreError, ValueError):
    pass


class MemoryClosedError(MemoryStoreError):
    pass


class EmbeddingError(MemoryStoreError):
    pass


class MemoryBackendError(MemoryStoreError):
    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class MemoryRecallError(MemoryStoreError):
    """A recall that cannot answer: ``reason`` "timeout" (over its time budget) or "error" (the embedder or the
    database failed; the cause is chained). The caller goes on without memories: a degraded reply, to count."""

    def __init__(self, message: str, *, reason: RecallFailure) -> None:
        super().__init__(message)
        self.reason: RecallFailure = reason
