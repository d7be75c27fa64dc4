"""The local LLM in its own process, supervised: whichever engine serves (llama.cpp on a CPU, transformers on
a GPU), a native crash, a CUDA error or an out-of-memory kill ends the worker, never the server.

    server process                                   worker process (python -m dialogue.worker.process)
    WorkerChatModel ──Unix socket, JSON lines──►     Engine (dialogue.llamacpp or dialogue.hf) with its pool
    Supervisor: start, watch, restart ──────────►    the only process that loads the model

The reply in progress fails with a BackendError, the supervisor restarts the worker, and the next request is
answered.
"""

from __future__ import annotations

from dialogue import hf, llamacpp
from dialogue.errors import BackendUnavailableError
from dialogue.worker.client import WorkerChatModel
from dialogue.worker.supervisor import EngineKind, Supervisor, WorkerOptions

__all__ = ["EngineKind", "Supervisor", "WorkerChatModel", "WorkerOptions", "start_worker"]


def start_worker(
    options: WorkerOptions, *, max_new_tokens: int = 96, temperature: float = 0.7, repeat_penalty: float = 1.2
) -> WorkerChatModel:
    """Start a supervised worker for ``options.model`` (blocking: seconds) and a chat model that uses it."""
    if options.engine == "llamacpp" and not llamacpp.available():
        raise BackendUnavailableError(
            f"the llamacpp backend needs llama-cpp-python, which is not installed: {llamacpp.INSTALL_HINT}, "
            "or set llm.backend to 'transformers'"
        )
    if options.engine == "transformers" and not hf.available():
        raise BackendUnavailableError(f"the transformers backend needs torch and transformers: {hf.INSTALL_HINT}")
    supervisor = Supervisor(options)
    supervisor.start()
    return WorkerChatModel(
        socket=str(supervisor.socket),
        supervisor=supervisor,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        repeat_penalty=repeat_penalty,
    )
