"""An OpenAI-compatible chat endpoint (vLLM, a llama.cpp server, ...) as a LangChain chat model.

Streams Server-Sent Events from ``POST {base_url}/chat/completions`` with httpx. Tools bound with
``bind_tools`` are sent as OpenAI function tools; tool-call deltas arrive as LangChain tool_call_chunks.

Keyword arguments of a call: ``json_schema`` (constrained output: ``response_format`` of type ``json_schema``,
as OpenAI and vLLM take it; a server that refuses that form (400/422, or llama.cpp's own server: a 500 that
names response_format) is asked with
``{"type": "json_object", "schema": ...}`` instead, and that form is kept for the later calls), ``seed``,
``max_new_tokens``, ``temperature``. ``background`` and ``affinity`` mean nothing to a remote server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import SecretStr

from dialogue.backends.base import StreamingChatModel, role
from dialogue.errors import BackendError


class OpenAICompatChatModel(StreamingChatModel):
    base_url: str  # e.g. http://127.0.0.1:8080/v1
    model_name: str = "default"
    api_key: SecretStr | None = None
    max_tokens: int = 96
    temperature: float = 0.7
    timeout_s: float = 20.0
    schema_form: str = "json_schema"  # how response_format carries a schema here ("json_schema" or "json_object")

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": role(m), "content": m.text} for m in messages],
            "max_tokens": int(kwargs.get("max_new_tokens", self.max_tokens)),
            "temperature": float(kwargs.get("temperature", self.temperature)),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if stop:
            body["stop"] = stop
        for key in ("tools", "tool_choice"):
            if kwargs.get(key):
                body[key] = kwargs[key]
        if kwargs.get("seed") is not None:
            body["seed"] = int(kwargs["seed"])
        schema = kwargs.get("json_schema")
        if schema is not None:
            if self.schema_form == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "content", "schema": schema, "strict": True},
                }
        return body

    def _other_form(self, body: dict[str, Any], response: httpx.Response) -> dict[str, Any] | None:
        """The request again with the other schema form, when the server refused this one (else None)."""
        form = (body.get("response_format") or {}).get("type")
        refused = response.status_code in (400, 422) or "response_format" in response.text  # (llama.cpp: 500)
        if form != "json_schema" or not refused:
            return None
        object.__setattr__(self, "schema_form", "json_object")  # (a pydantic model: set past validation)
        schema = body["response_format"]["json_schema"]["schema"]
        return {**body, "response_format": {"type": "json_object", "schema": schema}}

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        return headers

    @property
    def _url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        body: dict[str, Any] | None = self._request(messages, stop, kwargs)
        try:
            with httpx.Client(timeout=self.timeout_s) as client:
                while body is not None:
                    with client.stream("POST", self._url, json=body, headers=self._headers()) as response:
                        if response.status_code >= 400:
                            response.read()
                            body = self._other_form(body, response)
                            if body is None:
                                raise _http_error(response)
                            continue
                        sent = False
                        for line in response.iter_lines():
                            chunk = _parse_line(line)
                            if chunk is _DONE:
                                break
                            if isinstance(chunk, ChatGenerationChunk):
                                if run_manager is not None and chunk.text:
                                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                                sent = True
                                yield chunk
                        if not sent:  # LangChain refuses a stream without chunks
                            yield ChatGenerationChunk(message=AIMessageChunk(content=""))
                        return
        except httpx.HTTPError as exc:
            raise BackendError(f"OpenAI-compatible endpoint {self.base_url} failed: {exc}", retryable=True) from exc

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        body: dict[str, Any] | None = self._request(messages, stop, kwargs)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                while body is not None:
                    async with client.stream("POST", self._url, json=body, headers=self._headers()) as response:
                        if response.status_code >= 400:
                            await response.aread()
                            body = self._other_form(body, response)
                            if body is None:
                                raise _http_error(response)
                            continue
                        sent = False
                        async for line in response.aiter_lines():
                            chunk = _parse_line(line)
                            if chunk is _DONE:
                                break
                            if isinstance(chunk, ChatGenerationChunk):
                                if run_manager is not None and chunk.text:
                                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                                sent = True
                                yield chunk
                        if not sent:  # LangChain refuses a stream without chunks
                            yield ChatGenerationChunk(message=AIMessageChunk(content=""))
                        return
        except httpx.HTTPError as exc:
            raise BackendError(f"OpenAI-compatible endpoint {self.base_url} failed: {exc}", retryable=True) from exc


_DONE = object()


def _parse_line(line: str) -> ChatGenerationChunk | object | None:
    """One SSE line: a chunk, _DONE at ``data: [DONE]``, or None (comments, keep-alives, empty deltas)."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return _DONE
    try:
        event = json.loads(payload)
    except json.JSONDecodeError:
        raise BackendError(f"the endpoint sent an event that is not JSON: {payload[:80]!r}") from None
    if not isinstance(event, dict):
        return None
    if "error" in event:
        raise BackendError(f"the endpoint reported an error: {event['error']}")
    usage = event.get("usage")
    usage_metadata = None
    if isinstance(usage, dict):
        usage_metadata = {
            "input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "total_tokens": int(usage.get("total_tokens") or 0),
        }
    choices = event.get("choices") or []
    delta = choices[0].get("delta") or {} if choices and isinstance(choices[0], dict) else {}
    content = delta.get("content") or ""
    tool_chunks = []
    for tc in delta.get("tool_calls") or []:
        fn = tc.get("function") or {}
        tool_chunks.append(
            {
                "name": fn.get("name"),
                "args": fn.get("arguments"),
                "id": tc.get("id"),
                "index": tc.get("index", 0),
                "type": "tool_call_chunk",
            }
        )
    finish = choices[0].get("finish_reason") if choices and isinstance(choices[0], dict) else None
    if not content and not tool_chunks and usage_metadata is None and not finish:
        return None
    message = AIMessageChunk(
        content=content,
        tool_call_chunks=tool_chunks,  # type: ignore[arg-type]
        usage_metadata=usage_metadata,  # type: ignore[arg-type]
        response_metadata={"finish_reason": finish} if finish else {},
    )
    return ChatGenerationChunk(message=message)


def _http_error(response: httpx.Response) -> BackendError:
    retryable = response.status_code in (408, 429) or response.status_code >= 500
    return BackendError(
        f"OpenAI-compatible endpoint answered {response.status_code}: {response.text[:200]}", retryable=retryable
    )
