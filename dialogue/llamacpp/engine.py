"""The llama.cpp engine, as it runs inside the worker process (dialogue.llamacpp.worker): only that process
loads native code.

A llama.cpp context holds one KV cache, so a context serves one reply at a time. The engine keeps a few
contexts (2 by default) and gives each request the free context where it finds the most of its prompt cached
and throws the least away (ties: the context its affinity key used last, then the least recently used): a
conversation keeps finding its own cached prefix (llama.cpp then computes only the new tail), while a second
conversation or a memory summary uses another context instead of evicting it.

Priorities: a ``background`` request (memory summary, prompt warm-up) never waits in front of a ``foreground``
one (a reply): it stops at its next batch of prompt tokens or its next token while any foreground request is
generating or waiting, and fails with ``Preempted``. An ``idle`` request (generated content) yields the same way
to both: the warm-up that computes a conversation's next prompt while its player listens is worth more than a
job that nobody waits on by the second.

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

from dialogue.llamacpp.protocol import Done, Request

Chat = list[tuple[str, str]]  # (role, content) of each message

log = logging.getLogger("dialogue.llamacpp.engine")

QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "f16": "LLAMA_FTYPE_MOSTLY_F16"}


class Preempted(Exception):
    """A background request gave the model up to a foreground one."""


class Halted(Exception):
    """The request was stopped (its client hung up)."""


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


class _Slot:
    """One llama.cpp context and what its KV cache holds (the last prompt and reply it computed)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.busy = False
        self.chat: Chat = []
        self.affinity: str | None = None
        self.used = 0.0  # time.monotonic() of its last request
        self.request: Request | None = None  # the request using it now, and the event that stops that one
        self.halt: threading.Event | None = None

    def ending_for(self, request: Request) -> bool:
        """Busy with a request that ends within a batch of tokens once ``request`` (a foreground one) waits: a
        background one (preempted), one whose client hung up, or the same conversation's previous request (a
        conversation sends its next request only after hanging up on the last one)."""
        mine = self.request
        if mine is None:
            return False
        if mine.priority == "background" or (self.halt is not None and self.halt.is_set()):
            return True
        return request.affinity is not None and mine.affinity == request.affinity

    def worth(self, chat: Chat) -> int:
        """Messages of ``chat`` found in the cache, less the cached messages it would throw away (a reply at
        the end of the cache is never worth keeping: it is the last thing computed)."""
        shared = 0
        for mine, theirs in zip(self.chat, chat, strict=False):
            if mine != theirs:
                break
            shared += 1
        lost = len(self.chat) - shared
        if lost and self.chat[-1][0] == "assistant":
            lost -= 1
        return shared - lost


class ContextPool:
    """The contexts, which of them are busy, and how many foreground requests are in the house."""

    def __init__(self, slots: list[_Slot]) -> None:
        self.slots = slots
        self._cond = threading.Condition()
        self.foreground = 0  # foreground requests generating or waiting for a context
        self.background = 0  # background requests generating or waiting (idle ones yield to them)

    def busy(self) -> int:
        with self._cond:
            return sum(slot.busy for slot in self.slots)

    def take(self, request: Request, chat: Chat, halt: threading.Event | None = None) -> _Slot:
        """The free context worth the most to ``chat``; waits for one. A foreground request also waits for a
        busy context worth more that is about to be free (``_Slot.ending_for``) rather than compute its prompt
        again elsewhere. A background request never waits in front of a foreground one: it raises Preempted
        while any is in the house. Work that is not a reply runs one request at a time per priority (a warm-up
        waits for another warm-up, a content job for another job): two computations on the same few cores
        each take more than twice as long (their threads spin against each other), and a warm-up that is not
        done when the player speaks is no warm-up."""
        background = request.priority != "foreground"

        def rank(s: _Slot) -> tuple[int, bool, float]:
            return (s.worth(chat), request.affinity is not None and s.affinity == request.affinity, -s.used)

        with self._cond:
            self.yield_if_outranked(request)
            if not background:
                self.foreground += 1
            elif request.priority == "background":
                self.background += 1
            while True:
                try:
                    self.yield_if_outranked(request)  # one came while this waited
                except Preempted:
                    if request.priority == "background":
                        self.background -= 1
                    raise
                if background and any(s.busy and s.request is not None and s.request.priority == request.priority
                                       for s in self.slots):  # fmt: skip
                    self._cond.wait()  # one of its kind at a time
                    continue
                free = [slot for slot in self.slots if not slot.busy]
                ending = [] if background else [s for s in self.slots if s.busy and s.ending_for(request)]
                best = max(free, key=rank) if free else None
                if best is not None and not any(s.worth(chat) > best.worth(chat) for s in ending):
                    best.busy, best.request, best.halt = True, request, halt
                    return best
                self._cond.wait()

    def yield_if_outranked(self, request: Request) -> None:
        """Preempted when a request of a higher priority is in the house (foreground over background and idle;
        background over idle)."""
        if request.priority != "foreground" and self.foreground:
            raise Preempted("a conversation turn is using the model")
        if request.priority == "idle" and self.background:
            raise Preempted("a conversation's background work is using the model")

    def poke(self) -> None:
        """A busy context's request was stopped: waiters look again."""
        with self._cond:
            self._cond.notify_all()

    def give_back(self, slot: _Slot, request: Request, chat: Chat) -> None:
        with self._cond:
            slot.busy, slot.request, slot.halt = False, None, None
            slot.chat = chat
            slot.affinity = request.affinity
            slot.used = time.monotonic()
            if request.priority == "foreground":
                self.foreground -= 1
            elif request.priority == "background":
                self.background -= 1
            self._cond.notify_all()

    def drain(self) -> list[_Slot]:
        """Wait until no context is busy, then hold them all (for closing)."""
        with self._cond:
            while any(slot.busy for slot in self.slots):
                self._cond.wait()
            for slot in self.slots:
                slot.busy = True
            return list(self.slots)


class Engine:
    def __init__(self, options: EngineOptions) -> None:
        load_variant(options.variant)
        cls = _llama_class()
        threads = options.threads or os.cpu_count() or 1
        slots = [
            _Slot(
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
            slot.llm.halt_batch = options.halt_batch
        self.options = options
        self.pool = ContextPool(slots)

    def generate(self, request: Request, halt: threading.Event) -> Iterator[str | Done]:
        """The reply's pieces of text, then Done. Raises Halted, Preempted, ValueError (a bad request)."""
        chat: Chat = [(m[0], m[1]) for m in request.messages]
        t0 = time.perf_counter()
        slot = self.pool.take(request, chat, halt)
        waited, others = time.perf_counter() - t0, self.pool.busy() - 1
        reply: list[str] = []
        computed = False  # the whole prompt was computed
        outcome = "failed"
        done: Done | None = None
        try:
            for item in self._run(slot.llm, request, chat, halt, reply, t0):
                computed = True
                if isinstance(item, Done):
                    done = item
                yield item
            outcome = "done"
        except Halted:
            outcome = "halted"
            raise
        except Preempted:
            outcome = "preempted"
            raise
        finally:
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "request %s %s: waited %.0f ms for a context (then %d other busy), prompt %s tokens "
                    "(%s cached), first piece %s ms, %d pieces, %.0f ms in all",
                    request.priority,
                    outcome,
                    waited * 1000,
                    others,
                    done.input_tokens if done else "?",
                    done.cached_tokens if done else "?",
                    done.first_ms if done else "?",
                    len(reply),
                    (time.perf_counter() - t0) * 1000,
                )
            # what the cache holds now: the prompt and the reply as far as it got (a prompt stopped part way:
            # at most the messages before the last)
            self.pool.give_back(slot, request, [*chat, ("assistant", "".join(reply))] if computed else chat[:-1])

    def _run(
        self, llm: Any, request: Request, chat: Chat, halt: threading.Event, reply: list[str], t0: float
    ) -> Iterator[str | Done]:
        def should_stop() -> None:
            if halt.is_set():
                raise Halted()
            self.pool.yield_if_outranked(request)

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
            slot.llm.close()
