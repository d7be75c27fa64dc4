"""Sessions outlive a failed turn: a failed decode (partial or final), a broken listener, a listener step or a
turn's cleanup that raises. Each ends with an `error` event and the session goes on listening."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fakes import FakeTransport, RecordingObserver, make_conversation, play_until_final, start

from llmasos.conversation import Conversation, ConversationOptions, ListenStage, Observer, Services, Transport
from llmasos.participant import Heard, Participant
from rtc.audio import PcmFrame
from rtc.protocol import TextMessage
from voice.audio import float_to_s16, resample
from voice.endpoint import Endpointer, EndpointOptions
from voice.listener import Listener, ListenerOptions, ListenEvent
from voice.testing import EnergyVADStream, FakeASR, silence, speech_like
from voice.types import ASR, AudioFrame, Samples, SpeechStarted, Transcript

pytestmark = pytest.mark.unit

QUESTION = "Do you have any swords?"


class MicTransport(FakeTransport):
    """A transport whose microphone plays ``frames`` once, then stays silent until the session closes."""

    def __init__(self, frames: list[PcmFrame]) -> None:
        super().__init__()
        self._frames = frames

    async def audio_frames(self) -> AsyncIterator[PcmFrame]:
        while self._frames:
            yield self._frames.pop(0)
        await self.closed.wait()


def mic(signal16k: Samples) -> list[PcmFrame]:
    """The signal as WebRTC delivers it: 48 kHz stereo int16, 20 ms frames."""
    pcm = float_to_s16(resample(signal16k, 16_000, 48_000))
    return [PcmFrame(np.repeat(pcm[i : i + 960], 2), 48_000, 2) for i in range(0, len(pcm) - 959, 960)]


class FailsOnceASR(FakeASR):
    """The ASR protocol: raises on the first partial decode and on the first final one; every other final hears
    the question."""

    def __init__(self) -> None:
        super().__init__(text=lambda audio, final: QUESTION if final else "do you")
        self.failed: list[bool] = []

    async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript:
        result = await super().transcribe(audio, final=final)
        if final not in self.failed:
            self.failed.append(final)
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return result


def conversation_over(
    transport: FakeTransport, open_listener: Callable[[], Any], observer: RecordingObserver, reply: str = "Aye."
) -> Conversation:
    conv, *_ = make_conversation(reply)  # its dialogue manager, voice and memory
    services = Services(
        open_listener=open_listener, tts=conv.services.tts, memory=conv.services.memory, observer=observer
    )
    return Conversation(services, transport, conv.manager, "ann", ConversationOptions(greet=False))


async def expect(t: FakeTransport, session: asyncio.Task[None], predicate: Any) -> dict[str, Any]:
    """The first message matching ``predicate``; fails at once if the session ends before it comes."""
    waiter = asyncio.ensure_future(t.until(predicate))
    await asyncio.wait([waiter, session], return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        pytest.fail(f"the session ended; it sent {[m['type'] for m in t.sent]}")
    return waiter.result()


async def test_a_failed_partial_and_a_failed_final_get_errors_and_the_next_utterance_is_answered() -> None:
    asr, observer = FailsOnceASR(), RecordingObserver()
    utterance = np.concatenate([speech_like(2.0), silence(1.0)])  # long enough for a partial
    t = MicTransport(mic(np.concatenate([silence(0.3), utterance, utterance])))
    conv = conversation_over(
        t, lambda: Listener(Endpointer(EnergyVADStream(), EndpointOptions()), asr, ListenerOptions()), observer
    )
    task = await start(conv)

    final = await expect(t, task, lambda m: m["type"] == "transcript" and m["final"])
    assert final["text"] == QUESTION
    errors = t.of("error")
    assert [e["code"] for e in errors] == ["asr_failed", "asr_failed"]  # the partial, then the final
    assert "still to come" in errors[0]["message"] and "say it again" in errors[1]["message"]
    assert asr.failed == [False, True]
    assert (await play_until_final(t))["text"] == "Aye."  # the second utterance is answered
    await expect(t, task, lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    t.closed.set()
    await task
    assert conv.transcripts == [QUESTION]  # the failed utterance was never answered
    assert observer.errors == ["asr_failed", "asr_failed"]
    assert observer.outcomes[-1] == "done"


class BreakingListener:
    """The ListenStage protocol: the first one opened breaks at its first frame (a VAD that crashed); the next
    hears ``QUESTION``."""

    def __init__(self) -> None:
        self.opened = 0

    def open(self) -> BreakingListener:
        self.opened += 1
        return self

    async def run(self, frames: AsyncIterator[AudioFrame]) -> AsyncIterator[ListenEvent]:
        if self.opened == 1:
            async for _ in frames:
                raise RuntimeError("onnxruntime: invalid input")
        yield Transcript(QUESTION, "en", final=True, utterance=0)
        async for _ in frames:
            pass


async def test_a_broken_listener_is_reopened_and_the_session_goes_on() -> None:
    listener, observer = BreakingListener(), RecordingObserver()
    t = MicTransport(mic(silence(0.2)))
    task = await start(conversation_over(t, listener.open, observer))
    error = await expect(t, task, lambda m: m["type"] == "error")
    assert error["code"] == "listen_failed" and "onnxruntime" in error["message"]
    await expect(t, task, lambda m: m["type"] == "transcript" and m["final"])
    assert (await play_until_final(t))["text"] == "Aye."
    t.closed.set()
    await task
    assert listener.opened == 2 and observer.errors == ["listen_failed"]


class DeadListener:
    """The ListenStage protocol: breaks before reading any audio, every time."""

    def __init__(self) -> None:
        self.opened = 0

    def open(self) -> DeadListener:
        self.opened += 1
        return self

    async def run(self, frames: AsyncIterator[AudioFrame]) -> AsyncIterator[ListenEvent]:
        raise RuntimeError("the VAD model is gone")
        yield  # pragma: no cover


async def test_a_listener_that_cannot_start_stops_listening_but_not_the_session() -> None:
    listener, observer = DeadListener(), RecordingObserver()
    t = MicTransport(mic(silence(0.2)))
    task = await start(conversation_over(t, listener.open, observer))
    assert (await expect(t, task, lambda m: m["type"] == "error"))["code"] == "listen_failed"
    t.inbox.put_nowait(TextMessage(type="text", text="Can you read me?"))
    await expect(t, task, lambda m: m["type"] == "state" and m["state"] == "speaking")
    assert (await play_until_final(t))["text"] == "Aye."
    assert not task.done()
    t.closed.set()
    await task
    assert listener.opened == 1  # not reopened in a loop: it would only fail again


async def test_a_listener_step_that_raises_is_reported_and_the_next_event_is_handled() -> None:
    conv, t, listener, _, _ = make_conversation("Aye.")
    calls = 0
    heard = conv.room.heard  # the room's step for each thing a participant does

    def breaks_once(participant: Participant, event: Heard) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("a step broke")
        heard(participant, event)

    conv.room.heard = breaks_once  # type: ignore[method-assign]
    task = await start(conv)
    listener.events.put_nowait(SpeechStarted(at_s=0.5))
    error = await expect(t, task, lambda m: m["type"] == "error")
    assert error["code"] == "listen_failed" and "a step broke" in error["message"]
    listener.events.put_nowait(Transcript(QUESTION, "en", final=True, utterance=0))
    assert (await play_until_final(t))["text"] == "Aye."
    t.closed.set()
    await task


class ObserverBrokenOnce(RecordingObserver):
    """The Observer protocol, whose first turn_finished raises (a metrics bug)."""

    def turn_finished(self, marks: dict[str, float], outcome: str) -> None:
        super().turn_finished(marks, outcome)
        if len(self.outcomes) == 1:
            raise KeyError("stage")


async def test_a_turn_whose_cleanup_raises_still_ends_and_the_next_turn_is_answered() -> None:
    observer = ObserverBrokenOnce()
    conv, t, _, _, _ = make_conversation("Aye.", observer=observer)
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="First?"))
    await play_until_final(t)
    error = await expect(t, task, lambda m: m["type"] == "error")
    assert error["code"] == "reply_failed" and "could not finish" in error["message"]
    await expect(t, task, lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    t.sent.clear()
    t.inbox.put_nowait(TextMessage(type="text", text="Second?"))
    assert (await play_until_final(t))["text"] == "Aye."
    await expect(t, task, lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 2)
    t.closed.set()
    await task
    assert observer.outcomes == ["done", "done"]


if TYPE_CHECKING:  # each fake implements the whole protocol it stands in for
    _asr: type[ASR] = FailsOnceASR
    _breaking: type[ListenStage] = BreakingListener
    _dead: type[ListenStage] = DeadListener
    _transport: type[Transport] = MicTransport
    _observer: type[Observer] = ObserverBrokenOnce
