"""A voice conversation: one player, one character, one transport. A listener loop and at most one Turn.

    mic frames ─► 16 kHz mono ─► endpointer (VAD) ─► utterances ─► ASR ─► transcript ─► Turn
                                      └─ speech starts while the character speaks: barge-in (cancel the Turn)
    data channel: `text` ─► Turn · `interrupt` ─► cancel the Turn · `ping` ─► `pong` · bad input ─► `error`

What the player heard is what is kept: when a Turn ends (finished, interrupted or failed) its heard text
goes into the dialogue history and memory; the unheard rest and its actions are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from dialogue.errors import DialogueError
from dialogue.manager import DialogueManager
from dialogue.types import Character, ReplyDone, ReplyEvent, ReplySentence
from llmasos.chat import heard_lines
from llmasos.turn import Speaker, Timeline, Turn, speak_text
from memory.types import MemoryStore
from rtc.audio import PcmFrame
from rtc.errors import ProtocolError
from rtc.protocol import (
    ClientMessage,
    ErrorMessage,
    InterruptedMessage,
    InterruptMessage,
    MetricsMessage,
    PingMessage,
    PongMessage,
    ReplyMessage,
    StateMessage,
    TextMessage,
    TranscriptMessage,
)
from rtc.ratelimit import TokenBucket
from voice.audio import check_format
from voice.endpoint import EndpointOptions
from voice.errors import AudioFormatError, VoiceError
from voice.listener import ListenEvent
from voice.types import TTS, AudioFrame, SpeechStarted, Transcript, Utterance

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What a conversation needs from its peer (rtc.PeerSession implements it)."""

    @property
    def speaker(self) -> Speaker: ...

    @property
    def closed(self) -> asyncio.Event: ...

    def send(self, message: BaseModel) -> None: ...

    def audio_frames(self) -> AsyncIterator[PcmFrame]: ...

    def messages(self) -> AsyncIterator[ClientMessage | ProtocolError]: ...


class ListenStage(Protocol):
    """One session's listening stage (voice.listener.Listener implements it)."""

    def run(self, frames: AsyncIterator[AudioFrame]) -> AsyncIterator[ListenEvent]: ...


class Observer(Protocol):
    """Receives what happened, for metrics (llmasos.metrics.Metrics implements it)."""

    def turn_finished(self, marks: dict[str, float], outcome: str) -> None: ...

    def error(self, kind: str) -> None: ...


class _NoObserver:
    def turn_finished(self, marks: dict[str, float], outcome: str) -> None:
        pass

    def error(self, kind: str) -> None:
        pass


@dataclass(frozen=True)
class Services:
    """The shared, loaded components, and how to open one session's listening stage over them."""

    open_listener: Callable[[], ListenStage]
    tts: TTS
    memory: MemoryStore
    observer: Observer = _NoObserver()
    # memory reflection: sees every heard line (character, player, line); summarises them in the background
    reflect: Callable[[str, str, str], None] | None = None


@dataclass(frozen=True)
class ConversationOptions:
    endpoint: EndpointOptions = EndpointOptions()
    recall_k: int = 4
    recall_budget_s: float = 0.15
    greet: bool = True
    memory_writes_per_min: int = 60
    llm_timeout_s: float = 20.0  # the longest wait for the model's next piece of a reply
    apology: str = "Sorry, I lost my train of thought. Could you say that again?"


class Conversation:
    def __init__(
        self,
        services: Services,
        transport: Transport,
        manager: DialogueManager,
        player: str,
        options: ConversationOptions = ConversationOptions(),
    ) -> None:
        self._s = services
        self._t = transport
        self._manager = manager
        self._character: Character = manager.character
        self._player = player
        self._opts = options
        self._turn: Turn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_user_text = ""
        self._turns = 0
        self._audio_s = 0.0  # seconds of microphone audio read so far
        self._background: set[asyncio.Task[None]] = set()  # memory writes and warm-up of this session
        rate = options.memory_writes_per_min / 60.0
        self._memory_bucket = TokenBucket(rate, burst=max(2.0, options.memory_writes_per_min / 6))
        self.transcripts: list[str] = []  # final transcripts of this session, in order

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until the transport closes. Every turn is finalised (heard text stored) before this returns."""
        self._t.send(StateMessage(state="listening"))
        warm = getattr(self._s.memory, "warm", None)  # load this player's memories before the first recall
        if warm is not None:
            self._spawn(warm(self._character.id, self._player), "conversation-warm-memory")
        if self._opts.greet and self._character.greeting:
            self._start_turn(None, speak_text(self._character.greeting), Timeline())
        tasks = [
            asyncio.create_task(self._listen(), name="conversation-listen"),
            asyncio.create_task(self._handle_messages(), name="conversation-messages"),
        ]
        closed = asyncio.create_task(self._t.closed.wait())
        try:
            await asyncio.wait([closed, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("conversation task failed", exc_info=task.exception())
        finally:
            closed.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._cancel_turn()

    # ---- input ---------------------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        listener = self._s.open_listener()
        timelines: dict[int, Timeline] = {}
        async for event in listener.run(self._frames()):
            now = time.monotonic()
            if isinstance(event, SpeechStarted):
                self._on_speech_started()
            elif isinstance(event, Utterance):
                timeline = Timeline()
                # audio arrives in real time: the last speech was (audio read so far - its end) ago; the
                # utterance keeps pre_roll_ms of trailing silence after it
                speech_end_s = event.end_s - self._opts.endpoint.pre_roll_ms / 1000
                timeline.mark("speech_end", now - max(0.0, self._audio_s - speech_end_s))
                timeline.mark("endpoint", now)
                timelines[event.index] = timeline
            elif isinstance(event, Transcript):
                text = event.text.strip()
                if not event.final:
                    if text:
                        self._t.send(TranscriptMessage(text=text, final=False))
                    continue
                timeline = timelines.pop(event.utterance, Timeline())
                timeline.mark("asr_final", now)
                if not text:
                    continue
                self._t.send(TranscriptMessage(text=text, final=True, turn=self._turns + 1))
                self.transcripts.append(text)
                self._on_user_text(text, timeline)

    async def _frames(self) -> AsyncIterator[AudioFrame]:
        """The transport's frames as voice frames; a malformed frame is reported once and skipped."""
        reported = False
        async for frame in self._t.audio_frames():
            try:
                check_format(frame.sample_rate, frame.channels)
                if len(frame.samples) % frame.channels:
                    raise AudioFormatError(f"{len(frame.samples)} samples do not divide into {frame.channels} channels")
            except VoiceError as exc:
                if not reported:
                    reported = True
                    self._error("bad_audio", str(exc))
                continue
            self._audio_s += len(frame.samples) / frame.channels / frame.sample_rate
            yield AudioFrame(frame.samples.reshape(-1, frame.channels), frame.sample_rate, frame.channels)

    def _on_speech_started(self) -> None:
        turn = self._turn
        if turn is not None and turn.speaking:
            log.info("barge-in", extra={"turn": turn.number})
            self._interrupt()

    async def _handle_messages(self) -> None:
        async for item in self._t.messages():
            if isinstance(item, ProtocolError):
                self._error(item.code, item.message)
            elif isinstance(item, TextMessage):
                timeline = Timeline()
                timeline.mark("speech_end")
                self._on_user_text(item.text.strip(), timeline, typed=True)
            elif isinstance(item, InterruptMessage):
                self._interrupt()
            elif isinstance(item, PingMessage):
                self._t.send(PongMessage(id=item.id))

    # ---- turns ---------------------------------------------------------------------------------------------------

    def _on_user_text(self, text: str, timeline: Timeline, *, typed: bool = False) -> None:
        if not text:
            return
        log.debug("player said", extra={"text": text, "typed": typed})  # transcripts: debug logging only
        turn = self._turn
        if turn is not None and not turn.speaking and self._turn_user_text and not typed:
            # the user went on before the reply started: answer everything they said, once
            text = f"{self._turn_user_text} {text}"
        self._start_turn(text, self._reply(text, timeline), timeline)

    async def _reply(self, text: str, timeline: Timeline) -> AsyncIterator[ReplyEvent]:
        memories: list[str] = []
        try:
            recalled = await asyncio.wait_for(
                self._s.memory.recall(
                    self._character.id, self._player, text, k=self._opts.recall_k, budget_s=self._opts.recall_budget_s
                ),
                timeout=self._opts.recall_budget_s * 4,
            )
            memories = [r.memory.text for r in recalled]
        except Exception as exc:  # recall is best effort: the conversation goes on without it
            self._s.observer.error("memory_recall")
            log.warning("memory recall failed", extra={"reason": repr(exc)})
        timeline.mark("recall_done")
        replies = self._manager.reply(text, memories=memories, on_first_token=lambda: timeline.mark("llm_first_token"))
        spoke = False
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(replies), self._opts.llm_timeout_s)
                except StopAsyncIteration:
                    return
                spoke = spoke or isinstance(event, ReplySentence)
                yield event
        except (TimeoutError, DialogueError) as exc:
            # the model is down or stalled: say so, in the character's voice, and go on listening
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            log.warning("llm unavailable", extra={"reason": reason})
            self._error("llm_unavailable", f"the character's mind is unavailable: {reason}")
            if not spoke:
                yield ReplySentence(text=self._opts.apology, start_char=0)
                yield ReplyDone(full_text=self._opts.apology)
        finally:
            close = getattr(replies, "aclose", None)
            if close is not None:
                await close()

    def _start_turn(self, user_text: str | None, source: AsyncIterator[ReplyEvent], timeline: Timeline) -> None:
        previous = self._turn_task
        self._turns += 1
        turn = Turn(self._turns, lambda: source, self._s.tts, self._t.speaker, self._t.send, timeline)
        self._turn = turn
        self._turn_user_text = user_text or ""
        self._turn_task = asyncio.create_task(self._run_turn(turn, user_text, previous), name=f"turn-{turn.number}")

    async def _run_turn(self, turn: Turn, user_text: str | None, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            previous.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await previous
        self._t.send(StateMessage(state="thinking", turn=turn.number))
        outcome = "done"
        try:
            await turn.run()
        except asyncio.CancelledError:
            outcome = "interrupted"
            raise
        except VoiceError as exc:  # the voice failed: show the words at least
            outcome = "failed"
            log.error("speech synthesis failed", extra={"turn": turn.number, "reason": str(exc)})
            self._error("tts_failed", f"the character's voice failed: {exc}")
            if turn.text:
                self._t.send(ReplyMessage(text=turn.text, final=True, turn=turn.number))
        except Exception as exc:
            outcome = "failed"
            log.exception("turn failed", extra={"turn": turn.number})
            self._error("reply_failed", f"the character could not answer: {exc}")
        finally:
            self._finish(turn, user_text, outcome)

    def _finish(self, turn: Turn, user_text: str | None, outcome: str) -> None:
        heard = turn.text.strip() if outcome == "done" else turn.heard_text()
        if outcome != "done" and turn.speaking:
            self._t.speaker.clear()
            self._t.send(InterruptedMessage(turn=turn.number, heard=heard))
        if user_text is not None:
            self._manager.heard(len(heard))
            superseded = self._turn is not turn and not turn.speaking
            if not superseded:
                self._remember(user_text, heard)
        self._t.send(MetricsMessage(turn=turn.number, timeline_ms=turn.timeline.relative_ms()))
        self._s.observer.turn_finished(dict(turn.timeline.marks), outcome)
        if self._turn is turn:
            self._turn = None
            self._t.send(StateMessage(state="listening", turn=turn.number))

    def _remember(self, user_text: str, heard: str) -> None:
        memory, character, player, observer = self._s.memory, self._character, self._player, self._s.observer
        reflect = self._s.reflect

        bucket = self._memory_bucket

        async def write() -> None:
            try:
                # at most memory_writes_per_min per session: beyond it, writes wait (they are never dropped)
                lines = heard_lines(character.name, user_text, heard)
                waits = [bucket.reserve() for _ in lines]
                await asyncio.sleep(waits[-1])
                for line in lines:
                    await memory.remember(character.id, player, line, kind="heard")
                    if reflect is not None:
                        reflect(character.id, player, line)
            except Exception as exc:
                observer.error("memory_write")
                log.error("memory write failed", extra={"reason": repr(exc)})

        self._spawn(write(), "conversation-remember")

    def _error(self, code: str, message: str) -> None:
        self._s.observer.error(code)
        self._t.send(ErrorMessage(code=code, message=message))

    def _interrupt(self) -> None:
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()

    async def _cancel_turn(self) -> None:
        task = self._turn_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A background task of this session, kept referenced until done and awaited when the session closes."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
