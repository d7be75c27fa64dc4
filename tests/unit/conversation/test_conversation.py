"""The conversation loop on fakes of our own protocols: a scripted listener, a fake voice, a scripted model,
an in-memory store, and the real speaker track driven frame by frame (no wall clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from pydantic import BaseModel

from dialogue import ActionParam, ActionSpec, Backend, Character, DialogueManager
from llmasos.conversation import Conversation, ConversationOptions, Services
from memory.types import Memory, MemoryKind, Recalled
from rtc.audio import OutboundAudioTrack, PcmFrame
from rtc.errors import ProtocolError
from rtc.protocol import ClientMessage, PingMessage, TextMessage
from voice.listener import ListenEvent
from voice.types import AudioFrame, SpeechStarted, Transcript, TTSChunk, WordTiming

pytestmark = pytest.mark.unit

RATE = 48_000
WORD_MS = 100  # the fake voice speaks every word in exactly 100 ms


class FakeVoice:
    """TTS protocol: one chunk per line of text, every word 100 ms of tone, exact word timings."""

    sample_rate = RATE

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def stream(self, text_chunks: AsyncIterator[str]) -> AsyncIterator[TTSChunk]:
        offset, start_ms = 0, 0.0
        async for piece in text_chunks:
            text = piece.strip()
            lead = len(piece) - len(piece.lstrip())
            words, pos = [], offset + lead
            for i, word in enumerate(text.split()):
                at = piece.index(word, pos - offset)
                words.append(
                    WordTiming(
                        word, offset + at, offset + at + len(word), start_ms + i * WORD_MS, start_ms + (i + 1) * WORD_MS
                    )
                )
                pos = offset + at + len(word)
            n = len(text.split()) * RATE * WORD_MS // 1000
            pcm = np.full(n, 5000, dtype=np.int16)
            self.spoken.append(text)
            yield TTSChunk(pcm, RATE, text, offset + lead, offset + lead + len(text), start_ms, tuple(words))
            offset += len(piece)
            start_ms += n * 1000 / RATE


class FakeMemory:
    def __init__(self) -> None:
        self.items: list[Memory] = []

    async def remember(
        self, character: str, player: str | None, text: str, *, kind: MemoryKind = "heard", importance: float = 0.5
    ) -> str:
        self.items.append(Memory(str(len(self.items)), character, player, text, kind, importance, 0.0))
        return str(len(self.items))

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        return [Recalled(m, 1.0, 1.0) for m in self.items if m.player == player][:k]

    async def list(self, character: str | None, player: str | None, *, limit: int = 100) -> list[Memory]:
        return self.items[:limit]

    async def forget(self, player: str, character: str | None = None) -> int:
        return 0

    async def close(self) -> None:
        pass


class ScriptedListener:
    def __init__(self) -> None:
        self.events: asyncio.Queue[ListenEvent | None] = asyncio.Queue()

    async def run(self, frames: AsyncIterator[AudioFrame]) -> AsyncIterator[ListenEvent]:
        while (event := await self.events.get()) is not None:
            yield event


class FakeTransport:
    def __init__(self) -> None:
        self._speaker = OutboundAudioTrack(200, clock=lambda: 0.0, sleep=self._no_sleep)
        self._closed = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self.new_message = asyncio.Event()
        self.inbox: asyncio.Queue[ClientMessage | ProtocolError | None] = asyncio.Queue()

    @staticmethod
    async def _no_sleep(_: float) -> None:
        await asyncio.sleep(0)

    @property
    def speaker(self) -> OutboundAudioTrack:
        return self._speaker

    @property
    def closed(self) -> asyncio.Event:
        return self._closed

    def send(self, message: BaseModel) -> None:
        self.sent.append(message.model_dump(exclude_none=True))
        self.new_message.set()

    async def audio_frames(self) -> AsyncIterator[PcmFrame]:
        await self._closed.wait()
        return
        yield  # pragma: no cover

    async def messages(self) -> AsyncIterator[ClientMessage | ProtocolError]:
        while (item := await self.inbox.get()) is not None:
            yield item

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]

    async def until(self, predicate: Any) -> dict[str, Any]:
        """The first sent message matching ``predicate`` (waits for it; no wall clock)."""
        while True:
            for m in self.sent:
                if predicate(m):
                    return m
            self.new_message.clear()
            await self.new_message.wait()

    async def play(self, frames: int) -> None:
        """The client plays ``frames`` 20 ms frames of the character's voice."""
        for _ in range(frames):
            await self._speaker.recv()
            await asyncio.sleep(0)


CHARACTER = Character(
    id="smith",
    name="Brom",
    persona="A blacksmith.",
    greeting="Hello there friend.",
    actions=(ActionSpec("wave", params=(ActionParam("target", "string"),)), ActionSpec("nod")),
)


def _conversation(
    reply: str, *, greet: bool = False
) -> tuple[Conversation, FakeTransport, ScriptedListener, FakeMemory, DialogueManager]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply)] * 5))
    manager = DialogueManager(Backend("fake", model), CHARACTER)
    transport, listener, memory = FakeTransport(), ScriptedListener(), FakeMemory()
    services = Services(open_listener=lambda: listener, tts=FakeVoice(), memory=memory)
    options = ConversationOptions(greet=greet)
    return Conversation(services, transport, manager, "ann", options), transport, listener, memory, manager


async def _run(conversation: Conversation) -> asyncio.Task[None]:
    task = asyncio.create_task(conversation.run())
    await asyncio.sleep(0)
    return task


async def test_typed_text_gets_a_spoken_reply_with_timed_actions() -> None:
    conv, t, _, memory, manager = _conversation("Welcome to my forge. [wave target=player] Swords are here.")
    task = await _run(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Hi there"))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    assert not t.of("action")  # not yet played: not yet released
    while not t.of("reply") or not t.of("reply")[-1].get("final"):
        await t.play(5)
    final = t.of("reply")[-1]
    assert final["text"] == "Welcome to my forge. Swords are here."
    (action,) = t.of("action")
    assert action["name"] == "wave" and action["args"] == {"target": "player"}
    assert action["at_ms"] == 4 * WORD_MS  # the action stands before the 5th word, "Swords"
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    assert [m["state"] for m in t.of("state")] == ["listening", "thinking", "speaking", "listening"]
    assert t.of("metrics")[0]["turn"] == 1
    t.closed.set()
    await task
    assert [m.text for m in memory.items] == ["ann said: Hi there", "Brom said: Welcome to my forge. Swords are here."]
    assert manager.history[-1].text == "Welcome to my forge. Swords are here."


async def test_barge_in_keeps_only_what_was_heard() -> None:
    conv, t, listener, memory, manager = _conversation(
        "One two three four five six seven eight. [nod] Nine ten eleven twelve."
    )
    task = await _run(conv)
    listener.events.put_nowait(Transcript("Tell me a story", "en", final=True, utterance=0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    await t.play(16)  # 320 ms: three words fully heard
    listener.events.put_nowait(SpeechStarted(at_s=5.0))  # the user talks over the character
    interrupted = await t.until(lambda m: m["type"] == "interrupted")
    assert interrupted["heard"] == "One two three"
    assert t.speaker.buffered_ms == 0  # the unplayed audio is gone at once
    silent = [(await t.speaker.recv()).to_ndarray() for _ in range(3)]
    assert not any(frame.any() for frame in silent)
    assert not t.of("action")  # the nod after word 8 was never played, so never sent
    assert not any(m.get("final") for m in t.of("reply"))
    t.closed.set()
    await task
    assert manager.history[-1].text == "One two three"
    assert memory.items[-1].text == "Brom said: One two three"


async def test_greeting_is_spoken_first() -> None:
    conv, t, _, memory, _ = _conversation("unused", greet=True)
    task = await _run(conv)
    reply = await t.until(lambda m: m["type"] == "reply")
    assert reply["text"] == "Hello there friend."
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    t.closed.set()
    await task
    assert memory.items == []  # a greeting is not a conversation turn


async def test_bad_messages_get_errors_and_the_session_goes_on() -> None:
    conv, t, _, _, _ = _conversation("Fine. Thanks.")
    task = await _run(conv)
    t.inbox.put_nowait(ProtocolError("not valid JSON", code="bad_json"))
    t.inbox.put_nowait(PingMessage(type="ping", id=3))
    t.inbox.put_nowait(TextMessage(type="text", text="How are you?"))
    error = await t.until(lambda m: m["type"] == "error")
    assert error["code"] == "bad_json"
    assert (await t.until(lambda m: m["type"] == "pong"))["id"] == 3
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    t.closed.set()
    await task


async def test_speech_before_the_reply_starts_is_answered_together() -> None:
    conv, t, listener, memory, _ = _conversation("Yes. We have swords.")
    task = await _run(conv)
    listener.events.put_nowait(Transcript("Good morning.", "en", final=True, utterance=0))
    listener.events.put_nowait(Transcript("Do you have any swords?", "en", final=True, utterance=1))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    t.closed.set()
    await task
    said = [m.text for m in memory.items if m.text.startswith("ann said")]
    assert said == ["ann said: Good morning. Do you have any swords?"]


async def test_closing_mid_reply_stores_what_was_heard() -> None:
    conv, t, _, memory, _ = _conversation("Alpha beta gamma delta epsilon zeta eta theta.")
    task = await _run(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Greek letters please"))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    await t.play(11)  # 220 ms: two words
    t.closed.set()  # the client vanished
    await task
    assert [m.text for m in memory.items] == ["ann said: Greek letters please", "Brom said: Alpha beta"]
