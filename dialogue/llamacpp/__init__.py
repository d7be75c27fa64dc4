"""llama.cpp, the fast CPU engine for GGUF models, in a supervised worker process.

    server process                                   worker process (python -m dialogue.llamacpp.worker)
    WorkerChatModel ──Unix socket, JSON lines──►     Engine: llama.cpp contexts, generation threads
    Supervisor: start, watch, restart ──────────►    the only process that loads native code

A native crash (segfault, SIGILL, an OOM kill) ends the worker, never the server: the reply in progress fails
with a BackendError, the supervisor restarts the worker, and the next request is answered. The CPU kernels
are chosen by what the OS lets this process run, proved by a probe (dialogue.llamacpp.cpu).
"""

from __future__ import annotations

import importlib.util

from dialogue.errors import BackendUnavailableError
from dialogue.llamacpp.client import WorkerChatModel
from dialogue.llamacpp.supervisor import Supervisor, WorkerOptions

INSTALL_HINT = "make install (it builds llama-cpp-python 0.3.36 portably: see the README)"

__all__ = ["INSTALL_HINT", "Supervisor", "WorkerChatModel", "WorkerOptions", "available", "start_worker"]


def available() -> bool:
    """llama-cpp-python is installed (whether it loads a model is another matter)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def start_worker(
    options: WorkerOptions, *, max_new_tokens: int = 96, temperature: float = 0.7, repeat_penalty: float = 1.2
) -> WorkerChatModel:
    """Start a supervised worker for ``options.model`` (blocking: seconds) and a chat model that uses it."""
    if not available():
        raise BackendUnavailableError(
            f"the llamacpp backend needs llama-cpp-python, which is not installed: {INSTALL_HINT}, "
            "or set llm.backend to 'transformers'"
        )
    supervisor = Supervisor(options)
    supervisor.start()
    return WorkerChatModel(
        socket=str(supervisor.socket),
        supervisor=supervisor,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        repeat_penalty=repeat_penalty,
    )
