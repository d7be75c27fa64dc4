"""Errors raised by memory/.

    MemoryStoreError
    ├── MemoryInputError         an argument that cannot be stored (empty id, importance outside 0..1, ...)
    ├── MemoryClosedError        the store was used after close()
    ├── EmbeddingError           the embedding model could not be loaded or failed on a text
    └── MemoryBackendError       ChromaDB failed or cannot be reached (has .retryable)

Every message says what was wrong and, where it helps, what to do. (The root is not called ``MemoryError``:
that name is Python's out-of-memory error.)
"""

from __future__ import annotations


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
