"""Embedders: the sentence-transformers adapter (the packaged MiniLM) and a model-free hashing embedder.

Both return unit-length vectors, so Chroma's cosine distance is 1 - dot product.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memory.errors import EmbeddingError


class SentenceTransformerEmbedder:
    """A sentence-transformers model read from a local directory (never a hub id). Thread-safe for inference."""

    def __init__(self, model_dir: Path, *, device: str | None = None, batch_size: int = 64) -> None:
        if not model_dir.is_dir():
            raise EmbeddingError(f"embedding model directory {model_dir} does not exist")
        try:
            from sentence_transformers import SentenceTransformer

            self._model: Any = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        except Exception as exc:
            raise EmbeddingError(f"cannot load the embedding model from {model_dir}: {exc}") from exc
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise EmbeddingError(f"the model in {model_dir} does not state its embedding dimension")
        self._dimension = int(dimension)
        self._batch_size = batch_size

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            raise EmbeddingError(f"embedding failed: {exc}") from exc
        return [[float(x) for x in row] for row in vectors]


_WORD = re.compile(r"[a-z0-9']+")


class HashingEmbedder:
    """Bag of words hashed into ``dimension`` buckets: no model, deterministic, texts sharing words are close.

    For tests and tools that must not load a model; it knows nothing of meaning beyond shared words.
    """

    def __init__(self, dimension: int = 64) -> None:
        if dimension < 2:
            raise EmbeddingError("dimension must be >= 2")
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self._dimension
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % self._dimension] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector))
        if norm == 0.0:
            vector[0] = 1.0  # a text without words still gets a valid unit vector
            return vector
        return [x / norm for x in vector]
