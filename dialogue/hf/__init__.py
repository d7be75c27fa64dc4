"""transformers + torch, the engine for a GPU (CUDA bf16) or a transformers model directory, in the same
supervised worker process as llama.cpp (dialogue.worker): a CUDA error or an out-of-memory kill ends the
worker, never the server."""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'torch==2.13.0' 'transformers==5.24.0' 'gguf==0.19.0' (make install does it)"


def available() -> bool:
    """torch and transformers are installed."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))
    except (ImportError, ValueError):
        return False
