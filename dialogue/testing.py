"""Test doubles for code that drives dialogue/: a chat model that streams scripted chunks.

``ScriptedChatModel`` is a real LangChain BaseChatModel: each call streams the next script (the last one
repeats), chunk by chunk, and records the messages it was given and the tools bound to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from dialogue.backends.base import StreamingChatModel

Script = Sequence[str | AIMessageChunk]


def split_text(text: str, cuts: Sequence[int]) -> list[str]:
    """``text`` cut at the given offsets (any order, out-of-range ignored), no empty pieces."""
    points = sorted({c for c in cuts if 0 < c < len(text)})
    pieces, last = [], 0
    for p in points:
        pieces.append(text[last:p])
        last = p
    pieces.append(text[last:])
    return [p for p in pieces if p]


def tool_call_chunk(index: int, name: str | None = None, args: str | None = None) -> AIMessageChunk:
    """One streamed piece of a native tool call, as an OpenAI-compatible backend yields it."""
    return AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": name, "args": args, "id": f"call_{index}", "index": index}],  # type: ignore[list-item]
    )


class ScriptedChatModel(StreamingChatModel):
    scripts: list[list[str | AIMessageChunk]]
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        self.bound_tools = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=self.bound_tools, **kwargs)

    def _next(self, messages: list[BaseMessage]) -> list[ChatGenerationChunk]:
        script = self.scripts[min(len(self.calls), len(self.scripts) - 1)]
        self.calls.append(list(messages))
        chunks = [AIMessageChunk(content=c) if isinstance(c, str) else c for c in script]
        # LangChain refuses a stream without chunks: an empty reply is one empty chunk
        return [ChatGenerationChunk(message=c) for c in chunks or [AIMessageChunk(content="")]]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._next(messages)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._next(messages):
            yield chunk
