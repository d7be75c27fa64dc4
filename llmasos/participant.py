"""A person in a room: their microphone listened to on its own (VAD, endpointing, ASR over the shared models),
and their data channel. What they do reaches the room as typed events (``Heard``); the room decides.

    mic frames ─► 16 kHz mono ─► listener (endpointer + ASR) ─► SpeechBegan / SpeechWentOn / Partial /
                                                                 Tentative / Final / NotHeard / ListenerBroke
    data channel ─► Typed / Interrupt / Focus / World / ActionResult (``ping`` is answered here, bad input
                    gets an ``error`` here)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from llmasos.turn import OUT_RATE, Speaker, Timeline
from rtc.audio import PcmFrame
from rtc.errors import ProtocolError
from rtc.protocol import (
    ActionResultMessage,
    ClientMessage,
    FocusMessage,
    InterruptMessage,
    PingMessage,
    PlayedMessage,
    PongMessage,
    TextMessage,
    WorldMessage,
)
from voice.audio import InboundConverter, check_format, float_to_s16
from voice.echo import EchoGate, EchoOptions
from voice.errors import AudioFormatError, VoiceError
from voice.listener import DecodeFailed, ListenEvent
from voice.types import (
    ASR_RATE,
    AudioFrame,
    SpeechDropped,
    SpeechOnset,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    Transcript,
    Utterance,
)

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What a participant needs from its peer (rtc.PeerSession implements it). ``speaker`` is the voice of a
    1:1 session's character; a room's characters speak into the room's mix instead."""

    @property
    def speaker(self) -> Speaker: ...

    @property
    def closed(self) -> asyncio.Event: ...

    def send(self, message: BaseModel) -> None: ...

    def audio_frames(self) -> AsyncIterator[PcmFrame]: ...

    def messages(self) -> AsyncIterator[ClientMessage | ProtocolError]: ...

    def tap_sent(self, tap: Callable[[npt.NDArray[np.int16]], None]) -> None:
        """``tap`` gets the audio this person is sent (48 kHz mono s16), frame by frame, as it is sent."""
        ...


class ListenStage(Protocol):
    """One participant's listening stage (voice.listener.Listener implements it)."""

    def run(self, frames: AsyncIterator[AudioFrame]) -> AsyncIterator[ListenEvent]: ...


ECHO_ONSET_S = 1.0  # the character's voice came back this recently: its first sound holds no reply

# ---- what a participant does, as the room hears it ---------------------------------------------------------------


@dataclass(frozen=True)
class VoiceOnset:
    """The first of what may be speech (SpeechBegan follows when it is, VoiceDropped when it is not)."""


@dataclass(frozen=True)
class VoiceDropped:
    """What began at the last VoiceOnset was too short to be speech: nothing was said."""


@dataclass(frozen=True)
class SpeechBegan:
    pass


@dataclass(frozen=True)
class SpeechEnded:
    """The utterance is over (its final transcript is still to come): the floor is free of this person."""


@dataclass(frozen=True)
class SpeechWentOn:
    """The participant spoke again in a pause: a tentative transcript of that utterance is stale."""


@dataclass(frozen=True)
class Partial:
    text: str


@dataclass(frozen=True)
class Tentative:
    """The final decode of the utterance so far, made in a pause (it may yet go on)."""

    utterance: int
    text: str
    speech_end: float  # monotonic time the speech paused


@dataclass(frozen=True)
class Final:
    utterance: int
    text: str  # "" when the utterance had no words
    timeline: Timeline = field(compare=False)


@dataclass(frozen=True)
class NotHeard:
    """The ASR failed on an utterance (``final``: its final transcript, which will not come)."""

    utterance: int
    final: bool
    error: Exception


@dataclass(frozen=True)
class ListenerBroke:
    """The listener failed and is reopened on the audio that follows: its utterance in progress is gone."""


@dataclass(frozen=True)
class Typed:
    text: str
    timeline: Timeline = field(compare=False)


@dataclass(frozen=True)
class Interrupt:
    pass


@dataclass(frozen=True)
class Focus:
    character: str | None


@dataclass(frozen=True)
class World:
    """What the game knows now about this person's world (replaces what it said before)."""

    facts: tuple[str, ...]


@dataclass(frozen=True)
class Played:
    """How far this person's client has played turn ``turn``'s reply audio."""

    turn: int
    at_ms: int


@dataclass(frozen=True)
class ActionResult:
    """How a world action of turn ``turn`` turned out in the game."""

    turn: int
    action: str
    ok: bool
    reason: str


Heard = (
    VoiceOnset
    | VoiceDropped
    | SpeechBegan
    | SpeechEnded
    | SpeechWentOn
    | Partial
    | Tentative
    | Final
    | NotHeard
    | ListenerBroke
    | World
    | ActionResult
    | Played
    | Typed
    | Interrupt
    | Focus
)


class Host(Protocol):
    """The room a participant is in."""

    def heard(self, participant: Participant, event: Heard) -> None: ...

    def timeline_for(self, participant: Participant, utterance: int) -> Timeline | None:
        """The timeline of a reply already prepared for this utterance (a held one), to mark its end in."""
        ...

    def report(self, participant: Participant, code: str, message: str, *, tell: bool = True) -> None:
        """Count an error and (``tell``) tell ``participant`` about it: the session goes on."""
        ...


@dataclass
class _Listening:
    """One listener's bookkeeping; its audio times count from ``opened_at_s`` of the microphone stream."""

    opened_at_s: float
    paused_at_s: float = 0.0  # the listener's audio time of the last pause in speech
    timelines: dict[int, Timeline] = field(default_factory=dict)  # per utterance, until its final transcript


class Participant:
    """One person: ``run()`` listens to them and reads their messages until their transport closes."""

    def __init__(
        self,
        id: str,
        name: str,
        transport: Transport,
        open_listener: Callable[[], ListenStage],
        host: Host,
        pre_roll_ms: int = 300,
        echo: EchoOptions | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.transport = transport
        self._open_listener = open_listener
        self._host = host
        self._pre_roll_s = pre_roll_ms / 1000
        self.in_speech = False  # an utterance is open
        self.speaking = False  # ... or one is still being transcribed
        self.audio_s = 0.0  # seconds of microphone audio read so far
        self.transcripts: list[str] = []  # final transcripts, in order
        self._onset_told = False  # the room was told of the open utterance's first sound
        self.on_frame: Callable[[PcmFrame], None] | None = None  # every microphone frame (a room's mix)
        # the character's voice coming back through this person's microphone is taken out before listening
        self.echo = EchoGate(echo) if echo is not None else None
        if self.echo is not None:
            gate, sent = self.echo, InboundConverter(ASR_RATE)
            transport.tap_sent(lambda pcm: gate.reference(sent.convert(AudioFrame(pcm.reshape(-1, 1), OUT_RATE, 1))))
            self._mic = InboundConverter(ASR_RATE)

    def send(self, message: BaseModel) -> None:
        self.transport.send(message)

    # ---- listening ---------------------------------------------------------------------------------------------

    async def listen(self) -> None:
        """Listen until the microphone ends. Each event is one step: a step that raises is reported
        (`listen_failed`) and listening goes on. A listener that breaks is reopened on the frames that follow;
        one that broke before reading any audio would only break again, so listening stops there (typed text
        is still answered) until the session ends."""
        reported = False  # a broken listener is reported once until a reopened one works again
        while True:
            state = _Listening(self.audio_s)
            frames = self._frames()
            try:
                async for event in self._open_listener().run(frames):
                    reported = False
                    try:
                        self._step(event, state)
                    except Exception as exc:
                        log.exception("listen step failed", extra={"event": type(event).__name__})
                        self._host.report(self, "listen_failed", f"could not handle what was heard: {exc}")
                return  # the microphone ended
            except Exception as exc:
                if not reported:
                    log.exception("listener failed; reopening it", extra={"audio_s": round(self.audio_s, 2)})
                self._host.report(self, "listen_failed", f"listening failed: {exc}", tell=not reported)
                reported = True
            finally:
                with contextlib.suppress(RuntimeError):  # still running in a listener's task: it goes with it
                    await frames.aclose()
            self.in_speech = self.speaking = False
            self._host.heard(self, ListenerBroke())
            if self.audio_s == state.opened_at_s:
                log.error("listening stopped: the listener fails before reading any audio")
                await self.transport.closed.wait()
                return

    def _step(self, event: ListenEvent, state: _Listening) -> None:
        try:
            self._on_event(event, state)
        finally:
            if isinstance(event, SpeechStarted | Utterance):
                self.in_speech = isinstance(event, SpeechStarted)
            # the participant speaks, or what they said is still being transcribed
            self.speaking = self.in_speech or bool(state.timelines)

    def _on_event(self, event: ListenEvent, state: _Listening) -> None:
        now = time.monotonic()
        if isinstance(event, SpeechOnset):
            # the character's voice coming back leaves a trace a moment long now and then: where it came back
            # this last second, a reply holds when there is speech (SpeechStarted), not at the first sound
            self._onset_told = self.echo is None or not self.echo.echo_within(ECHO_ONSET_S)
            if self._onset_told:
                self._host.heard(self, VoiceOnset())
        elif isinstance(event, SpeechDropped):
            if self._onset_told:
                self._host.heard(self, VoiceDropped())
            self._onset_told = False
        elif isinstance(event, SpeechStarted):
            self._host.heard(self, SpeechBegan())
        elif isinstance(event, SpeechPaused):
            state.paused_at_s = event.at_s
        elif isinstance(event, SpeechResumed):
            self._host.heard(self, SpeechWentOn())
        elif isinstance(event, Utterance):
            timeline = self._host.timeline_for(self, event.index) or Timeline()
            speech_end_s = event.speech_end_s
            if speech_end_s is None:  # an utterance that does not say: it keeps pre_roll_ms of trailing silence
                speech_end_s = event.end_s - self._pre_roll_s
            timeline.mark("speech_end", self._clock_at(state.opened_at_s + speech_end_s, now))
            timeline.mark("endpoint", now)
            state.timelines[event.index] = timeline
            self._host.heard(self, SpeechEnded())
        elif isinstance(event, DecodeFailed):
            log.warning(
                "speech recognition failed",
                extra={"utterance": event.utterance, "final": event.final, "reason": repr(event.error)},
            )
            if event.final:
                state.timelines.pop(event.utterance, None)
            self._host.heard(self, NotHeard(event.utterance, event.final, event.error))
        elif isinstance(event, Transcript):
            text = event.text.strip()
            if event.tentative:
                if text:
                    speech_end = self._clock_at(state.opened_at_s + state.paused_at_s, now)
                    self._host.heard(self, Tentative(event.utterance, text, speech_end))
                return
            if not event.final:
                if text:
                    self._host.heard(self, Partial(text))
                return
            timeline = state.timelines.pop(event.utterance, Timeline())
            timeline.mark("asr_final", now)
            if text:
                self.transcripts.append(text)
            self._host.heard(self, Final(event.utterance, text, timeline))

    def _clock_at(self, audio_s: float, now: float) -> float:
        """The monotonic time of ``audio_s`` in the microphone stream: audio arrives in real time, so it was
        (audio read so far - audio_s) ago."""
        return now - max(0.0, self.audio_s - audio_s)

    async def _frames(self) -> AsyncGenerator[AudioFrame, None]:
        """The transport's frames as voice frames; a malformed frame is reported once and skipped."""
        reported = False
        async for frame in self.transport.audio_frames():
            try:
                check_format(frame.sample_rate, frame.channels)
                if len(frame.samples) % frame.channels:
                    raise AudioFormatError(f"{len(frame.samples)} samples do not divide into {frame.channels} channels")
            except VoiceError as exc:
                if not reported:
                    reported = True
                    self._host.report(self, "bad_audio", str(exc))
                continue
            self.audio_s += len(frame.samples) / frame.channels / frame.sample_rate
            if self.on_frame is not None:
                self.on_frame(frame)
            heard = AudioFrame(frame.samples.reshape(-1, frame.channels), frame.sample_rate, frame.channels)
            if self.echo is not None:
                heard = AudioFrame(float_to_s16(self.echo.filter(self._mic.convert(heard))).reshape(-1, 1), ASR_RATE, 1)
            yield heard

    # ---- messages ----------------------------------------------------------------------------------------------

    async def read_messages(self) -> None:
        async for item in self.transport.messages():
            try:
                self._on_message(item)
            except Exception as exc:  # one message's failure is that message's: the session goes on
                log.exception("message step failed", extra={"message": type(item).__name__})
                self._host.report(self, "message_failed", f"could not handle that message: {exc}")

    def _on_message(self, item: ClientMessage | ProtocolError) -> None:
        if isinstance(item, ProtocolError):
            self._host.report(self, item.code, item.message)
        elif isinstance(item, TextMessage):
            timeline = Timeline()
            timeline.mark("speech_end")
            if item.text.strip():
                self._host.heard(self, Typed(item.text.strip(), timeline))
        elif isinstance(item, InterruptMessage):
            self._host.heard(self, Interrupt())
        elif isinstance(item, FocusMessage):
            self._host.heard(self, Focus(item.character))
        elif isinstance(item, WorldMessage):
            self._host.heard(self, World(tuple(f.strip() for f in item.facts if f.strip())))
        elif isinstance(item, ActionResultMessage):
            self._host.heard(self, ActionResult(item.turn, item.action, item.ok, (item.reason or "").strip()))
        elif isinstance(item, PlayedMessage):
            self._host.heard(self, Played(item.turn, item.at_ms))
        elif isinstance(item, PingMessage):
            self.send(PongMessage(id=item.id))
