"""llama.cpp (llama-cpp-python) as a LangChain chat model: the fast CPU engine for GGUF models.

llama_cpp is imported only when a model is loaded; without it, BackendUnavailableError says what to install.

A llama.cpp context holds one KV cache, so a context serves one reply at a time. The model keeps a few
contexts (``contexts``, 2 by default) and gives each reply the free context where it finds the most of its
prompt cached and throws the least away: a conversation keeps finding its own cached prefix (llama.cpp then
computes only the new tail), while a second conversation or a memory summary uses another context instead
of evicting it.
Each reply generates in its own worker thread (llama.cpp releases the GIL while it computes) and streams its
pieces through a queue; closing the stream early (barge-in) stops the generation at the next token.

A call with ``background=True`` (memory reflection) yields to conversation turns: it stops at its next token
while any turn is generating or waiting, and raises BackendPreemptedError, so a summary never slows a reply.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import importlib.util
import os
import threading
import time
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
    contexts: int = 2  # KV caches kept (each ~50 MB at 2048 tokens, plus the repacked weights)


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
        slots = [
            _Slot(
                llama_cpp.Llama(
                    model_path=str(options.path),
                    n_ctx=options.context,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=False,
                )
            )
            for _ in range(max(1, options.contexts))
        ]
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendError(f"llama.cpp cannot load {options.path}: {exc}") from exc
    return LlamaCppChatModel(
        slots=slots,
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
        repeat_penalty=options.repeat_penalty,
    )


Chat = list[tuple[str, str]]  # (role, content) of each message


class _Slot:
    """One llama.cpp context and what its KV cache holds (the last prompt and reply it computed)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.busy = False
        self.chat: Chat = []
        self.used = 0.0  # time.monotonic() of its last reply

    def shared(self, chat: Chat) -> int:
        """How many leading messages ``chat`` has in common with what this context computed last."""
        n = 0
        for mine, theirs in zip(self.chat, chat, strict=False):
            if mine != theirs:
                break
            n += 1
        return n

    def worth(self, chat: Chat) -> int:
        """Messages of ``chat`` found in the cache, less the cached messages it would throw away (a reply at
        the end of the cache is never worth keeping: it is the last thing computed)."""
        shared = self.shared(chat)
        lost = len(self.chat) - shared
        if lost and self.chat[-1][0] == "assistant":
            lost -= 1
        return shared - lost


class LlamaCppChatModel(StreamingChatModel):
    slots: list[Any]  # _Slot
    max_new_tokens: int = 96
    temperature: float = 0.7
    repeat_penalty: float = 1.2
    state: Any = None  # the contexts' condition and the turns in progress (set at construction)

    def model_post_init(self, context: Any) -> None:
        self.state = _State()

    def _take(self, chat: Chat, background: bool) -> _Slot:
        """The free context worth the most to ``chat`` (least recently used among equals); waits for one."""
        state = self.state
        with state.cond:
            if background and state.foreground:
                raise BackendPreemptedError("a conversation turn is using the model")
            if not background:
                state.foreground += 1
            while True:
                free: list[_Slot] = [slot for slot in self.slots if not slot.busy]
                if free:
                    slot = max(free, key=lambda s: (s.worth(chat), -s.used))
                    slot.busy = True
                    return slot
                state.cond.wait()

    def _give_back(self, slot: _Slot, chat: Chat, background: bool) -> None:
        state = self.state
        with state.cond:
            slot.busy = False
            slot.chat = chat
            slot.used = time.monotonic()
            if not background:
                state.foreground -= 1
            state.cond.notify_all()

    @property
    def _llm_type(self) -> str:
        return "llama.cpp"

    def close(self) -> None:
        """Free the model (after the replies in progress, if any)."""
        for slot in self.slots:
            self._take_slot(slot)
            slot.llm.close()

    def _take_slot(self, slot: _Slot) -> None:
        with self.state.cond:
            while slot.busy:
                self.state.cond.wait()
            slot.busy = True

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        background = bool(kwargs.pop("background", False))
        for chunk in self._run(messages, stop, threading.Event(), kwargs, background):
            if run_manager is not None and chunk.text:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

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
                for chunk in self._run(messages, stop, halt, kwargs, background):
                    put(chunk)
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

    def _run(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        halt: threading.Event,
        kwargs: dict[str, Any],
        background: bool,
    ) -> Iterator[ChatGenerationChunk]:
        """Generate on the best free context, and remember what its cache then holds."""
        chat: Chat = [(role(m), m.text) for m in messages]
        slot = self._take(chat, background)
        reply: list[str] = []
        try:
            if halt.is_set():
                return
            for chunk in self._generate_chunks(slot.llm, chat, stop, halt, kwargs, background):
                reply.append(chunk.text)
                yield chunk
        finally:
            self._give_back(slot, [*chat, ("assistant", "".join(reply))], background)

    def _generate_chunks(
        self,
        llm: Any,
        chat: Chat,
        stop: list[str] | None,
        halt: threading.Event,
        kwargs: dict[str, Any],
        background: bool,
    ) -> Iterator[ChatGenerationChunk]:
        max_tokens = int(kwargs.get("max_new_tokens", self.max_new_tokens))
        stream = llm.create_chat_completion(
            messages=[{"role": r, "content": c} for r, c in chat],
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
                if background and self.state.foreground:
                    raise BackendPreemptedError("a conversation turn is using the model")
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
        in_context = int(getattr(llm, "n_tokens", 0) or 0)  # the prompt and what was generated
        prompt = max(0, in_context - tokens)
        usage = {"input_tokens": prompt, "output_tokens": tokens, "total_tokens": prompt + tokens}
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=usage,  # type: ignore[arg-type]
                response_metadata={"finish_reason": finish},
            )
        )


class _State:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.foreground = 0  # conversation replies generating or waiting for a context
