"""llama.cpp (llama-cpp-python) as a LangChain chat model: the fast CPU engine for GGUF models.

llama_cpp is imported only when a model is loaded; without it, BackendUnavailableError says what to install.

One ``Llama`` holds one KV cache, so replies run one at a time (a lock; sessions queue for the model, and the
common prompt prefix of consecutive replies is reused from the cache). Each reply generates in its own worker
thread (llama.cpp releases the GIL while it computes) and streams its pieces through a queue; closing the
stream early (barge-in) stops the generation at the next token and frees the model for the next reply.

A call with ``background=True`` (memory reflection) yields to conversation turns: it stops at its next token
when a turn is waiting for the model and raises BackendPreemptedError, so a summary never delays a reply.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import importlib.util
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from dialogue.backends.base import StreamingChatModel, role
from dialogue.errors import BackendError, BackendPreemptedError, BackendUnavailableError

INSTALL_HINT = 'CMAKE_ARGS="-DLLAMA_CURL=OFF" pip install llama-cpp-python==0.3.36'


@dataclass(frozen=True)
class LlamaCppOptions:
    path: Path  # the .gguf file
    threads: int = 0  # 0: one per core
    context: int = 2048
    max_new_tokens: int = 96
    temperature: float = 0.7
    repeat_penalty: float = 1.2  # small models loop ("I am X. I am X. ...") without it


def available() -> bool:
    """llama-cpp-python is installed (whether it loads a model is another matter)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "f16": "LLAMA_FTYPE_MOSTLY_F16"}


def reencode(source: Path, target: Path, quant: str, threads: int = 0) -> Path:
    """``source`` re-encoded as ``quant`` ("q8_0", "f16") at ``target``, made once (seconds) and kept.

    Why: llama.cpp computes a prompt with fast kernels for Q8_0/F16 weights on AVX2/AVX-512 CPUs, about twice
    as fast as for Q4_1; 8 bits per weight keep the values of 4-bit weights almost exactly. The file is
    written beside the target and renamed into place, so concurrent starts never see half a file.
    """
    if target.is_file():
        return target
    llama_cpp = importlib.import_module("llama_cpp")
    ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    params.nthread = threads or os.cpu_count() or 1
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        rc = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            raise BackendError(f"llama.cpp could not re-encode {source.name} as {quant} (code {rc})")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def load_llamacpp(options: LlamaCppOptions) -> LlamaCppChatModel:
    """Load the model once (blocking: call it from a thread or at start-up)."""
    try:
        llama_cpp = importlib.import_module("llama_cpp")
    except ImportError:
        raise BackendUnavailableError(
            f"the llamacpp backend needs llama-cpp-python, which is not installed: {INSTALL_HINT} "
            "(it compiles llama.cpp), or set llm.backend to 'transformers'"
        ) from None
    threads = options.threads or os.cpu_count() or 1
    try:
        llm = llama_cpp.Llama(
            model_path=str(options.path),
            n_ctx=options.context,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendError(f"llama.cpp cannot load {options.path}: {exc}") from exc
    return LlamaCppChatModel(
        llm=llm,
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
        repeat_penalty=options.repeat_penalty,
    )


class LlamaCppChatModel(StreamingChatModel):
    llm: Any
    max_new_tokens: int = 96
    temperature: float = 0.7
    repeat_penalty: float = 1.2
    lock: Any = None  # one reply at a time per model (set at construction)
    waiting: list[int] = [0]  # foreground calls waiting for the lock (set at construction)

    def model_post_init(self, context: Any) -> None:
        if self.lock is None:
            self.lock = threading.Lock()
        self.waiting = [0]

    def _acquire(self, background: bool) -> None:
        if background:
            self.lock.acquire()
            return
        self.waiting[0] += 1  # under the GIL: a plain int is enough for "is anyone waiting"
        try:
            self.lock.acquire()
        finally:
            self.waiting[0] -= 1

    @property
    def _llm_type(self) -> str:
        return "llama.cpp"

    def close(self) -> None:
        """Free the model (after the reply in progress, if any)."""
        with self.lock:
            self.llm.close()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        background = bool(kwargs.pop("background", False))
        self._acquire(background)
        try:
            for chunk in self._generate_chunks(messages, stop, threading.Event(), kwargs, background):
                if run_manager is not None and chunk.text:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
        finally:
            self.lock.release()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ChatGenerationChunk | BaseException | None] = asyncio.Queue()
        halt = threading.Event()
        background = bool(kwargs.pop("background", False))

        def put(item: ChatGenerationChunk | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                self._acquire(background)
                try:
                    if halt.is_set():
                        return
                    for chunk in self._generate_chunks(messages, stop, halt, kwargs, background):
                        put(chunk)
                finally:
                    self.lock.release()
            except BaseException as exc:  # reported to the consumer below
                put(exc)
            finally:
                put(None)

        worker = threading.Thread(target=work, name="llm-llamacpp", daemon=True)
        worker.start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BackendError):
                    raise item
                if isinstance(item, BaseException):
                    raise BackendError(f"generation failed: {item}") from item
                if run_manager is not None and item.text:
                    await run_manager.on_llm_new_token(item.text, chunk=item)
                yield item
        finally:
            halt.set()  # the worker stops at its next token and frees the model

    def _generate_chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        halt: threading.Event,
        kwargs: dict[str, Any],
        background: bool = False,
    ) -> Iterator[ChatGenerationChunk]:
        if background and self.waiting[0]:
            raise BackendPreemptedError("a conversation turn is waiting for the model")
        chat = [{"role": role(m), "content": m.text} for m in messages]
        max_tokens = int(kwargs.get("max_new_tokens", self.max_new_tokens))
        stream = self.llm.create_chat_completion(
            messages=chat,
            stream=True,
            max_tokens=max_tokens,
            temperature=self.temperature,
            repeat_penalty=self.repeat_penalty,
            stop=stop or [],
        )
        tokens = 0
        finish = "stop"
        try:
            for event in stream:
                if halt.is_set():
                    break
                if background and self.waiting[0]:
                    raise BackendPreemptedError("a conversation turn is waiting for the model")
                choice = (event.get("choices") or [{}])[0]
                finish = choice.get("finish_reason") or finish
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    tokens += 1
                    yield ChatGenerationChunk(message=AIMessageChunk(content=text))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        in_context = int(getattr(self.llm, "n_tokens", 0) or 0)  # the prompt and what was generated
        prompt = max(0, in_context - tokens)
        usage = {"input_tokens": prompt, "output_tokens": tokens, "total_tokens": prompt + tokens}
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=usage,  # type: ignore[arg-type]
                response_metadata={"finish_reason": finish},
            )
        )
