"""Fakes of our own protocols for conversation tests: a fake voice, an in-memory store, a scripted listener,
a transport whose speaker is the real OutboundAudioTrack driven frame by frame (no wall clock).

mypy checks this module (pyproject.toml): every fake is declared against the protocol it stands in for (at the
end of the module), so a fake that drifts from its protocol fails the type check, not a test much later.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import BaseModel

from dialogue import ActionParam, ActionSpec, Backend, Character, DialogueManager
from dialogue.errors import BackendError
from llmasos.conversation import Conversation, ConversationOptions, ListenStage, Observer, Services, Transport
from memory.types import Memory, MemoryKind, MemoryStore, Recalled
from rtc.audio import OutboundAudioTrack, PcmFrame
from rtc.errors import ProtocolError
from rtc.protocol import ClientMessage
from voice.listener import ListenEvent
from voice.types import TTS, AudioFrame, TTSChunk, WordTiming

RATE = 48_000
WORD_MS = 100  # the fake voice speaks every word in exactly 100 ms


class FakeVoice:
    """TTS protocol: one chunk per line of text, every word 100 ms of tone, exact word timings."""

    sample_rate = RATE

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.synthesized = asyncio.Event()  # set at the first chunk of audio made

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
            self.synthesized.set()
            yield TTSChunk(pcm, RATE, text, offset + lead, offset + lead + len(text), start_ms, tuple(words))
            offset += len(piece)
            start_ms += n * 1000 / RATE


class FakeMemory:
    """The MemoryStore in a list. Like the real store, recall returns this player's memories of the character
    asked about and that character's world facts, never another player's or another character's."""

    def __init__(self) -> None:
        self.items: list[Memory] = []
        self.recalls: list[tuple[str, str, str, int]] = []  # (character, player, query, k) of every recall
        self.warmed: list[tuple[str, str]] = []
        self.flushes = 0

    async def remember(
        self, character: str, player: str | None, text: str, *, kind: MemoryKind = "heard", importance: float = 0.5
    ) -> str:
        memory = Memory(str(len(self.items)), character, player, text, kind, importance, float(len(self.items)))
        self.items.append(memory)
        return memory.id

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        self.recalls.append((character, player, query, k))
        mine = [m for m in self.items if m.character == character and m.player in (player, None)]
        return [Recalled(m, 1.0, 1.0) for m in mine[: max(0, k)]]

    async def warm(self, character: str, player: str) -> None:
        self.warmed.append((character, player))

    async def list(self, character: str | None, player: str | None, *, limit: int = 100) -> list[Memory]:
        found = [
            m
            for m in reversed(self.items)  # newest first
            if (character is None or m.character == character) and (player is None or m.player in (player, None))
        ]
        return found[: max(0, limit)]

    async def forget(self, player: str, character: str | None = None) -> int:
        gone = [m for m in self.items if m.player == player and (character is None or m.character == character)]
        self.items = [m for m in self.items if m not in gone]
        return len(gone)

    async def flush(self) -> None:
        self.flushes += 1

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

    def tap_sent(self, tap: Callable[[npt.NDArray[np.int16]], None]) -> None:
        self._speaker.on_sent = tap

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
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


def make_conversation(
    reply: str | BaseChatModel,
    *,
    greet: bool = False,
    voice: TTS | None = None,
    memory: FakeMemory | None = None,
    observer: Observer | None = None,
    reflect: Callable[[str, str, str], None] | None = None,
    options: ConversationOptions | None = None,
) -> tuple[Conversation, FakeTransport, ScriptedListener, FakeMemory, DialogueManager]:
    """A conversation with Brom; ``reply`` is what the model says (every time), or a chat model."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply)] * 20)) if isinstance(reply, str) else reply
    manager = DialogueManager(Backend("fake", model), CHARACTER)
    transport, listener, memory = FakeTransport(), ScriptedListener(), memory or FakeMemory()
    services = Services(open_listener=lambda: listener, tts=voice or FakeVoice(), memory=memory)
    if observer is not None:
        services = dataclasses.replace(services, observer=observer)
    if reflect is not None:
        services = dataclasses.replace(services, reflect=reflect)
    options = options or ConversationOptions(greet=greet)
    return Conversation(services, transport, manager, "ann", options), transport, listener, memory, manager


async def start(conversation: Conversation) -> asyncio.Task[None]:
    task = asyncio.create_task(conversation.run())
    await asyncio.sleep(0)  # let it send its first state
    return task


async def play_until_final(t: FakeTransport) -> dict[str, Any]:
    """Play the character's voice until the reply is final; returns the final reply."""
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    return [m for m in t.of("reply") if m.get("final")][-1]


class BrokenModel(BaseChatModel):
    """Down for the first ``failures`` calls (or hangs, if ``hang``), then answers."""

    failures: int = 1
    hang: bool = False
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> ChatResult:
        raise NotImplementedError

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.calls += 1
        if self.calls <= self.failures:
            if self.hang:
                await asyncio.Event().wait()
            raise BackendError("connection refused", retryable=True)
        yield ChatGenerationChunk(message=AIMessageChunk(content="I am back. Ask away."))


class GatedModel(BaseChatModel):
    """Says ``reply`` once ``gate`` is set (a model still thinking until the test lets it answer)."""

    reply: str
    gate: asyncio.Event
    calls: list[str] = []
    called: asyncio.Event  # set at every call

    async def wait_calls(self, n: int) -> None:
        """Until the model has been asked ``n`` times."""
        while len(self.calls) < n:
            self.called.clear()
            await self.called.wait()

    @property
    def _llm_type(self) -> str:
        return "gated"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> ChatResult:
        raise NotImplementedError

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        self.calls.append(messages[-1].text)
        self.called.set()
        await self.gate.wait()
        yield ChatGenerationChunk(message=AIMessageChunk(content=self.reply))


class DraftModel(BaseChatModel):
    """Writes the scripted ``drafts`` in turn (the last one again when they run out), in pieces of 8
    characters, and records each call's keyword arguments (``json_schema``, ``seed``, ``background``, ...).
    A draft that is ``None`` waits for ``gate`` (a model still busy until the test lets it go on)."""

    drafts: list[str | None]
    calls: list[dict[str, Any]] = []
    finish: str = "stop"
    gate: asyncio.Event | None = None
    called: asyncio.Event | None = None

    @property
    def _llm_type(self) -> str:
        return "draft"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> ChatResult:
        raise NotImplementedError

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kw: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        draft = self.drafts[min(len(self.calls), len(self.drafts) - 1)]
        self.calls.append({**kw, "system": messages[0].text, "request": messages[-1].text})
        if self.called is not None:
            self.called.set()
        if draft is None:
            assert self.gate is not None
            await self.gate.wait()
            draft = self.drafts[-1] or "{}"
        for i in range(0, len(draft), 8):
            yield ChatGenerationChunk(message=AIMessageChunk(content=draft[i : i + 8]))
        yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata={"finish_reason": self.finish}))


class RecordingObserver:
    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.errors: list[str] = []
        self._finished = asyncio.Event()

    def turn_finished(self, marks: dict[str, float], outcome: str) -> None:
        self.outcomes.append(outcome)
        self._finished.set()

    async def wait_outcome(self, outcome: str) -> None:
        while outcome not in self.outcomes:
            self._finished.clear()
            await self._finished.wait()

    def error(self, kind: str) -> None:
        self.errors.append(kind)


if TYPE_CHECKING:  # checked by mypy: each fake implements the whole protocol it stands in for
    _voice: type[TTS] = FakeVoice
    _memory: type[MemoryStore] = FakeMemory
    _listener: type[ListenStage] = ScriptedListener
    _transport: type[Transport] = FakeTransport
    _observer: type[Observer] = RecordingObserver


class LoadedEngine:
    """What the HTTP server needs of a loaded engine, no models: for tests of the HTTP edge (``characters`` by
    id; the values are not looked into)."""

    rooms: dict[str, Any] = {}
    reflector = None

    def __init__(self, *characters: str) -> None:
        self.characters: dict[str, Any] = dict.fromkeys(characters, object())

    def health(self) -> dict[str, Any]:
        return {"backend": "fake", "state": "in_process"}

    async def aclose(self) -> None:
        pass
