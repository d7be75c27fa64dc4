"""Faults: the model down or stalled, the voice failing, memory unreachable. The session goes on, and what
was said and heard is kept (the client vanishing mid-reply: tests/unit/conversation)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fakes import BrokenModel, FakeMemory, FakeVoice, RecordingObserver, make_conversation, play_until_final, start

from llmasos.conversation import ConversationOptions
from memory import MemoryRecallError, Recalled, RecallFailure
from rtc.protocol import TextMessage
from voice.errors import SynthesisError
from voice.types import TTSChunk

pytestmark = pytest.mark.unit


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


class DegradedMemory(FakeMemory):
    """A store whose recall cannot answer, as the real one reports it (tests/integration/memory shows the real
    store against a stopped Chroma server): MemoryRecallError with its reason."""

    def __init__(self, reason: RecallFailure) -> None:
        super().__init__()
        self.reason: RecallFailure = reason

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        raise MemoryRecallError("chroma server unreachable", reason=self.reason)


@pytest.mark.parametrize("reason", ["timeout", "error"])
async def test_memory_unreachable_the_conversation_goes_on_without_recall(reason: RecallFailure) -> None:
    observer = RecordingObserver()
    memory = DegradedMemory(reason)
    conv, t, _, _, _ = make_conversation("Still here.", memory=memory, observer=observer)
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Remember me?"))
    assert (await play_until_final(t))["text"] == "Still here."
    t.closed.set()
    await task
    assert observer.errors == [f"memory_recall_{reason}"]
    assert [m.text for m in memory.items] == ["The player said: Remember me?", "Brom said: Still here."]
