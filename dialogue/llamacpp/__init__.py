"""llama.cpp, the fast CPU engine for GGUF models. It runs only inside the supervised LLM worker process
(dialogue.worker); the CPU kernels are chosen by what the OS lets this process run, proved by a probe
(dialogue.llamacpp.cpu)."""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "make install (it builds llama-cpp-python 0.3.36 portably: see the README)"


def available() -> bool:
    """llama-cpp-python is installed (whether it loads a model is another matter)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False
