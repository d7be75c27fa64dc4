"""The LangChain chat model of the llama.cpp backend: each reply is a request to the LLM worker process.

Every call opens its own connection to the worker's Unix socket (about 0.1 ms), sends one request and reads
the reply's pieces as they come; closing the stream early (barge-in) hangs up, which stops the worker's
generation within one batch of prompt tokens or at the next token. A worker that dies mid-reply ends the
reply with a BackendError at once; while the supervisor restarts it, new requests wait for it (up to
``start_wait_s``) instead of failing.

Keyword arguments of a call: ``background=True`` (memory summaries, warm-ups: yields to replies, raises
BackendPreemptedError), ``idle=True`` (generated content: yields to replies and to background work),
``max_new_tokens``, ``affinity`` (a conversation id), ``json_schema`` (constrained output).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from dialogue.backends.base import StreamingChatModel, role
from dialogue.errors import BackendError, BackendPreemptedError
from dialogue.worker.protocol import MAX_LINE, Done, Failure, Info, Request, decode_reply
from dialogue.worker.supervisor import Supervisor


class WorkerChatModel(StreamingChatModel):
    socket: str  # the worker's Unix socket
    supervisor: Any = None  # the Supervisor that runs the worker (None: a worker someone else runs)
    max_new_tokens: int = 96
    temperature: float = 0.7
    repeat_penalty: float = 1.2
    start_wait_s: float = 30.0  # how long a request waits for a restarting worker

    @property
    def _llm_type(self) -> str:
        return "llama.cpp-worker"

    def close(self) -> None:
        """Stop the worker this model's supervisor runs (blocking)."""
        if isinstance(self.supervisor, Supervisor):
            self.supervisor.stop()

    def status(self) -> dict[str, Any]:
        if isinstance(self.supervisor, Supervisor):
            return self.supervisor.status()
        return {"state": "external", "socket": self.socket}

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the worker; while its supervisor restarts it, wait for it (once)."""
        sup = self.supervisor if isinstance(self.supervisor, Supervisor) else None
        refused: int | None = None  # the worker that refused the first connection (it died)
        for attempt in range(2):
            if sup is not None and (attempt or sup.status()["state"] != "ready"):
                await asyncio.to_thread(sup.wait_ready, self.start_wait_s, refused)
            refused = sup.pid if sup is not None else None
            try:
                return await asyncio.open_unix_connection(self.socket, limit=MAX_LINE)
            except (ConnectionError, FileNotFoundError) as exc:
                if sup is None or attempt:
                    raise BackendError(f"the LLM worker is not reachable: {exc}", retryable=True) from exc
        raise AssertionError("unreachable")

    async def info(self) -> Info:
        reader, writer = await self._connect()
        try:
            writer.write(b'{"op": "info"}\n')
            item = decode_reply(await reader.readline())
            if not isinstance(item, Info):
                raise BackendError(f"the LLM worker answered {item!r} to info")
            return item
        finally:
            writer.close()

    def request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> Request:
        return Request(
            messages=tuple((role(m), m.text) for m in messages),
            max_tokens=int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            temperature=float(kwargs.get("temperature", self.temperature)),
            repeat_penalty=self.repeat_penalty,
            stop=tuple(stop or ()),
            priority="idle" if kwargs.get("idle") else "background" if kwargs.get("background") else "foreground",
            affinity=kwargs.get("affinity"),
            json_schema=kwargs.get("json_schema"),
            seed=kwargs.get("seed"),
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self.request(messages, stop, kwargs)
        reader, writer = await self._connect()
        first_at: float | None = None  # when the first piece arrived: the hop is what the worker did not count
        try:
            writer.write(request.encode())
            sent_at = time.perf_counter()
            while True:
                try:
                    line = await reader.readline()
                except (ConnectionError, ValueError) as exc:
                    raise BackendError(f"the LLM worker's reply broke off: {exc}", retryable=True) from exc
                if not line:
                    raise BackendError("the LLM worker died during the reply", retryable=True)
                item = decode_reply(line)
                if first_at is None:
                    first_at = time.perf_counter()
                if isinstance(item, str):
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=item))
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(item, chunk=chunk)
                    yield chunk
                elif isinstance(item, Done):
                    hop_ms = (first_at - sent_at) * 1000 - item.first_ms if item.output_tokens else None
                    yield _done_chunk(item, hop_ms)
                    return
                elif isinstance(item, Failure):
                    if item.kind == "preempted":
                        raise BackendPreemptedError(item.message)
                    raise BackendError(f"the LLM worker failed: {item.message}", retryable=item.kind == "failed")
        finally:
            writer.close()  # hanging up stops the generation in the worker

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The blocking call: the async stream, run on a private event loop in a helper thread."""
        items: queue.Queue[ChatGenerationChunk | BaseException | None] = queue.Queue()

        async def pump() -> None:
            try:
                async for chunk in self._astream(messages, stop, None, **kwargs):
                    items.put(chunk)
            except BaseException as exc:  # handed to the caller
                items.put(exc)
            finally:
                items.put(None)

        thread = threading.Thread(target=lambda: asyncio.run(pump()), name="llm-worker-call", daemon=True)
        thread.start()
        while (item := items.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            if run_manager is not None and item.text:
                run_manager.on_llm_new_token(item.text, chunk=item)
            yield item
        thread.join()


def _done_chunk(done: Done, hop_ms: float | None) -> ChatGenerationChunk:
    """The reply's end: usage, why it ended, the worker's own timings and ``worker_hop_ms``, the time from
    sending the request to reading its first piece less the worker's own time to that piece (the process
    boundary: a Unix socket, JSON lines, the two event loops)."""
    usage = {
        "input_tokens": done.input_tokens,
        "output_tokens": done.output_tokens,
        "total_tokens": done.input_tokens + done.output_tokens,
        "input_token_details": {"cache_read": done.cached_tokens},
    }
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            usage_metadata=usage,  # type: ignore[arg-type]
            response_metadata={"finish_reason": done.finish, "worker_first_ms": done.first_ms,
                               "worker_total_ms": done.total_ms,
                               "worker_hop_ms": None if hop_ms is None else round(hop_ms, 3)},
        )
    )  # fmt: skip
