"""Faults: the model down or stalled, the voice failing, memory unreachable, the client gone. The session
goes on, and what was said and heard is kept."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fakes import FakeMemory, FakeVoice, make_conversation, play_until_final, start
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from dialogue.errors import BackendError
from llmasos.conversation import ConversationOptions
from rtc.protocol import TextMessage
from voice.errors import SynthesisError
from voice.types import TTSChunk

pytestmark = pytest.mark.unit


class BrokenModel(BaseChatModel):
    """Down for the first ``failures`` calls (or hangs, if ``hang``), then answers."""

    failures: int = 1
    hang: bool = False
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        raise NotImplementedError

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: Any = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.calls += 1
        if self.calls <= self.failures:
            if self.hang:
                await asyncio.Event().wait()
            raise BackendError("connection refused", retryable=True)
        yield ChatGenerationChunk(message=AIMessageChunk(content="I am back. Ask away."))


async def test_llm_down_gets_a_spoken_apology_and_the_session_goes_on() -> None:
    conv, t, _, memory, _ = make_conversation(BrokenModel(failures=1))
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Hello?"))
    error = await t.until(lambda m: m["type"] == "error")
    assert error["code"] == "llm_unavailable" and "connection refused" in error["message"]
    final = await play_until_final(t)
    assert final["text"].startswith("Sorry, I lost my train of thought")
    t.sent.clear()
    t.inbox.put_nowait(TextMessage(type="text", text="Are you there now?"))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    assert (await play_until_final(t))["text"] == "I am back. Ask away."
    t.closed.set()
    await task
    assert "The player said: Hello?" in [m.text for m in memory.items]


async def test_llm_stalled_times_out_into_an_apology() -> None:
    options = ConversationOptions(greet=False, llm_timeout_s=0.05)
    conv, t, _, _, _ = make_conversation(BrokenModel(failures=1, hang=True), options=options)
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Hello?"))
    error = await t.until(lambda m: m["type"] == "error")
    assert error["code"] == "llm_unavailable" and "timed out" in error["message"]
    assert (await play_until_final(t))["text"].startswith("Sorry")
    t.closed.set()
    await task


class BrokenVoice(FakeVoice):
    async def stream(self, text_chunks: AsyncIterator[str]) -> AsyncIterator[TTSChunk]:
        async for _ in text_chunks:
            raise SynthesisError("espeak crashed")
        yield  # pragma: no cover


async def test_tts_failure_shows_the_words_and_the_session_goes_on() -> None:
    conv, t, _, memory, _ = make_conversation("Here is my answer.", voice=BrokenVoice())
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Question?"))
    error = await t.until(lambda m: m["type"] == "error")
    assert error["code"] == "tts_failed"
    final = await t.until(lambda m: m["type"] == "reply" and m.get("final"))
    assert final["text"] == "Here is my answer."
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    t.closed.set()
    await task
    assert [m.text for m in memory.items] == ["The player said: Question?"]  # said, not heard


class UnreachableMemory(FakeMemory):
    """A Chroma server that is down: recall fails."""

    async def recall(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("chroma server unreachable")


async def test_memory_unreachable_the_conversation_goes_on_without_recall() -> None:
    errors: list[str] = []

    class Observer:
        def turn_finished(self, marks: dict[str, float], outcome: str) -> None:
            pass

        def error(self, kind: str) -> None:
            errors.append(kind)

    memory = UnreachableMemory()
    conv, t, _, _, _ = make_conversation("Still here.", memory=memory, observer=Observer())
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Remember me?"))
    assert (await play_until_final(t))["text"] == "Still here."
    t.closed.set()
    await task
    assert errors == ["memory_recall"]
    assert [m.text for m in memory.items] == ["The player said: Remember me?", "Brom said: Still here."]


async def test_logs_hold_no_transcripts(caplog: pytest.LogCaptureFixture) -> None:
    secret = "my secret password is swordfish"
    caplog.set_level(logging.INFO)
    conv, t, _, _, _ = make_conversation(BrokenModel(failures=1))
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text=secret))
    await t.until(lambda m: m["type"] == "error")
    await play_until_final(t)
    t.closed.set()
    await task
    assert caplog.records  # something was logged
    assert all(secret not in str(vars(r)) for r in caplog.records)  # not in messages, nor structured fields


async def test_debug_logging_does_hold_transcripts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="llmasos.conversation")
    conv, t, _, _, _ = make_conversation("Fine.")
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="debug me"))
    await play_until_final(t)
    t.closed.set()
    await task
    assert any(getattr(r, "text", None) == "debug me" for r in caplog.records)
