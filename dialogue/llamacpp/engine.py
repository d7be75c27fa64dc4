"""The llama.cpp engine, as it runs inside the worker process (dialogue.worker.process): only that process
loads native code.

A llama.cpp context holds one KV cache, so a context serves one reply at a time. The engine keeps a few
contexts (2 by default) in a pool (dialogue.worker.pool: which request runs where, who yields to whom): a
conversation keeps finding its own cached prefix, and llama.cpp then computes only the new tail.

Stopping: ``halt`` (the client hung up: barge-in, a dropped preemptive reply) stops a request within one batch
of prompt tokens (``halt_batch``) while the prompt is computed, and at the next token while it generates.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialogue.worker.pool import Chat, ContextPool, PooledEngine, Slot
from dialogue.worker.protocol import Done, Request

log = logging.getLogger("dialogue.llamacpp.engine")

QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "f16": "LLAMA_FTYPE_MOSTLY_F16"}


@dataclass(frozen=True)
class EngineOptions:
    path: Path  # the .gguf file
    threads: int = 0  # 0: one per core
    context: int = 2048
    contexts: int = 2  # KV caches kept (each ~50 MB at 2048 tokens)
    halt_batch: int = 64  # prompt tokens computed between two checks for halt/preemption
    variant: Path | None = None  # the ggml CPU variant library to load (a portable build); None: the built-in


def load_variant(library: Path | None) -> None:
    """Register the chosen CPU backend before llama.cpp would pick one itself (by CPUID, unsafely)."""
    llama_cpp = importlib.import_module("llama_cpp")
    if library is None:
        return
    # the registry lives in libggml; load it by the name libllama links against (the wheel holds copies, not
    # symlinks: libggml.so would be a second instance whose backends libllama never sees)
    lib_dir = Path(str(llama_cpp.__file__)).parent / "lib"
    ggml = ctypes.CDLL(str(lib_dir / "libggml.so.0"))
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    if not ggml.ggml_backend_load(str(library).encode()):
        raise RuntimeError(f"ggml could not load the CPU backend {library.name}")


def system_info() -> str:
    llama_cpp = importlib.import_module("llama_cpp")
    return str(llama_cpp.llama_print_system_info().decode(errors="replace")).strip()


def reencode(source: Path, target: Path, quant: str, threads: int = 0) -> Path:
    """``source`` re-encoded as ``quant`` ("q8_0", "f16") at ``target``, made once (seconds) and kept.

    Why: llama.cpp computes a prompt with fast kernels for Q8_0/F16 weights on AVX2/AVX-512 CPUs, about twice
    as fast as for Q4_1; 8 bits per weight keep the values of 4-bit weights almost exactly. The file is
    written beside the target and renamed into place, so concurrent starts never see half a file.
    """
    if target.is_file():
        return target
    llama_cpp = importlib.import_module("llama_cpp")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params.allow_requantize = True
    params.nthread = threads or os.cpu_count() or 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with _stderr_kept() as said:  # llama.cpp writes a line per tensor (~280): kept for the error only
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            tail = " | ".join(said[-5:])
            raise RuntimeError(f"llama.cpp could not re-encode {source.name} as {quant} (code {rc}): {tail}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


@contextlib.contextmanager
def _stderr_kept() -> Iterator[list[str]]:
    """What native code writes to stderr (file descriptor 2) inside the block goes to a temporary file; its
    lines are in the list yielded once the block is over."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += sink.read().decode("utf-8", "replace").splitlines()


def _llama_class() -> type[Any]:
    llama_cpp = importlib.import_module("llama_cpp")

    class StoppableLlama(llama_cpp.Llama):  # type: ignore[misc, name-defined]
        """llama_cpp.Llama whose prompt computation checks ``should_stop`` between batches of tokens."""

        should_stop: Callable[[], None] | None = None  # raises Halted / Preempted
        halt_batch: int = 64
        reused: int | None = None  # tokens found in the cache by the request in progress (set at its first eval)

        def eval(self, tokens: Sequence[int]) -> None:
            if self.reused is None:
                self.reused = int(self.n_tokens)
            step = max(1, self.halt_batch)
            for i in range(0, len(tokens), step):
                if self.should_stop is not None:
                    self.should_stop()
                super().eval(tokens[i : i + step])

    return StoppableLlama


class Engine(PooledEngine):
    """llama.cpp contexts in a pool; each request computes only what its context does not hold yet."""

    def __init__(self, options: EngineOptions) -> None:
        load_variant(options.variant)
        cls = _llama_class()
        threads = options.threads or os.cpu_count() or 1
        slots = [
            Slot(
                cls(
                    model_path=str(options.path),
                    n_ctx=options.context,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=False,
                )
            )
            for _ in range(max(1, options.contexts))
        ]
        for slot in slots:
            slot.context.halt_batch = options.halt_batch
        self.options = options
        self.pool = ContextPool(slots)

    def _run(
        self, llm: Any, request: Request, chat: Chat, halt: threading.Event, reply: list[str], t0: float
    ) -> Iterator[str | Done]:
        def should_stop() -> None:
            self.check(request, halt)

        llm.should_stop, llm.reused = should_stop, None
        extra: dict[str, Any] = {}
        if request.json_schema is not None:
            extra["response_format"] = {"type": "json_object", "schema": request.json_schema}
        stream = llm.create_chat_completion(
            messages=[{"role": r, "content": c} for r, c in chat],
            stream=True,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            repeat_penalty=request.repeat_penalty,
            stop=list(request.stop),
            seed=request.seed,
            **extra,
        )
        tokens = 0
        finish = "stop"
        first_ms = 0.0
        try:
            for event in stream:
                should_stop()
                choice = (event.get("choices") or [{}])[0]
                finish = choice.get("finish_reason") or finish
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    if not tokens:
                        first_ms = (time.perf_counter() - t0) * 1000
                    tokens += 1
                    reply.append(text)
                    yield text
        finally:
            llm.should_stop = None
            stream.close()
        in_context = int(llm.n_tokens)  # the prompt and what was generated
        prompt = max(0, in_context - tokens)
        yield Done(
            finish=finish,
            input_tokens=prompt,
            output_tokens=tokens,
            cached_tokens=min(prompt, prompt if llm.reused is None else llm.reused),
            first_ms=round(first_ms, 2),
            total_ms=round((time.perf_counter() - t0) * 1000, 2),
        )

    def close(self) -> None:
        for slot in self.pool.drain():
            slot.context.close()
