"""A voice conversation: one player, one character, one transport. A listener loop and at most one Turn.

    mic frames ─► 16 kHz mono ─► endpointer (VAD) ─► utterances ─► ASR ─► transcript ─► Turn
                                      └─ speech starts while the character speaks: barge-in (cancel the Turn)
    data channel: `text` ─► Turn · `interrupt` ─► cancel the Turn · `ping` ─► `pong` · bad input ─► `error`

What the player heard is what is kept: when a Turn ends (finished, interrupted or failed) its heard text
goes into the dialogue history and memory; the unheard rest and its actions are dropped.

Preemptive replies: when the user pauses, the listener announces a tentative transcript (the final decode of
the utterance so far) while the endpointing silence is still being timed. The reply to it starts at once as
a *held* Turn: recall, the model and the voice run, but nothing reaches the player. If the utterance ends on
that pause with the same words, the held Turn is released and speaks at once; if the user goes on speaking
(SpeechResumed) or the words differ, it is dropped without a trace (no history, no memory, no message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from dialogue.errors import DialogueError
from dialogue.manager import DialogueManager
from dialogue.types import Character, ReplyDone, ReplyEvent, ReplySentence
from llmasos.activity import Activity, Yielded
from llmasos.chat import heard_lines
from llmasos.turn import Speaker, Timeline, Turn, speak_text
from memory.errors import MemoryRecallError, MemoryStoreError
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
from voice.listener import DecodeFailed, ListenEvent
from voice.types import TTS, AudioFrame, SpeechPaused, SpeechResumed, SpeechStarted, Transcript, Utterance

log = logging.getLogger(__name__)

WARM_TASK = "conversation-warm-prompt"


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
    # whether any session is active; shared by a server's sessions (background model work waits for none)
    activity: Activity = field(default_factory=Activity)


@dataclass(frozen=True)
class ConversationOptions:
    endpoint: EndpointOptions = EndpointOptions()
    recall_k: int = 4
    recall_budget_s: float = 0.15
    greet: bool = True
    memory_writes_per_min: int = 60
    llm_timeout_s: float = 20.0  # the longest wait for the model's next piece of a reply
    preemptive: bool = True  # start the reply from a tentative transcript, held until the turn really ends
    apology: str = "Sorry, I lost my train of thought. Could you say that again?"


@dataclass
class _Listening:
    """One listener's bookkeeping; its audio times count from ``opened_at_s`` of the microphone stream."""

    opened_at_s: float
    paused_at_s: float = 0.0  # the listener's audio time of the last pause in speech
    timelines: dict[int, Timeline] = field(default_factory=dict)  # per utterance, until its final transcript


@dataclass
class _Held:
    """A preemptive reply, prepared from the tentative transcript of utterance ``utterance``."""

    utterance: int
    text: str
    turn: Turn
    task: asyncio.Task[None]


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
        self._held: _Held | None = None
        self._merged: set[int] = set()  # turns whose words a later turn answers together with what followed
        self._carried = ""  # words whose reply was dropped when the player went on; answered with what follows
        self._in_speech = False  # an utterance is open
        self._speaking = False  # ... or one is still being transcribed
        self._audio_s = 0.0  # seconds of microphone audio read so far
        self._background: set[asyncio.Task[None]] = set()  # memory writes and warm-up of this session
        rate = options.memory_writes_per_min / 60.0
        self._memory_bucket = TokenBucket(rate, burst=max(2.0, options.memory_writes_per_min / 6))
        self.transcripts: list[str] = []  # final transcripts of this session, in order

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until the transport closes. Every turn is finalised (heard text stored) before this returns."""
        self._t.send(StateMessage(state="listening"))
        memory, character, player = self._s.memory, self._character.id, self._player

        async def warm_memory() -> None:  # load this player's memories before the first recall (a hint)
            try:
                await memory.warm(character, player)
            except MemoryStoreError as exc:  # the first recall will say whether memory is degraded
                log.warning("memory warm-up failed", extra={"reason": repr(exc)})

        self._spawn(warm_memory(), "conversation-warm-memory")
        if self._opts.greet and self._character.greeting:
            self._start_turn(None, lambda _: speak_text(self._character.greeting), Timeline())
        self._spawn(self._warm(), WARM_TASK)  # the character's prompt, during the greeting
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
            self._in_speech = self._speaking = False
            self._s.activity.set(self, False)
            await self._cancel_turn()

    # ---- input ---------------------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Listen until the microphone ends. Each event is one step: a step that raises is reported
        (`listen_failed`) and listening goes on. A listener that breaks is reopened on the frames that follow;
        one that broke before reading any audio would only break again, so listening stops there (typed text
        is still answered) until the session ends."""
        reported = False  # a broken listener is reported once until a reopened one works again
        while True:
            state = _Listening(self._audio_s)
            frames = self._frames()
            try:
                async for event in self._s.open_listener().run(frames):
                    reported = False
                    try:
                        self._on_listen_event(event, state)
                    except Exception as exc:
                        log.exception("listen step failed", extra={"event": type(event).__name__})
                        self._error("listen_failed", f"could not handle what was heard: {exc}")
                return  # the microphone ended
            except Exception as exc:
                self._s.observer.error("listen_failed")
                if not reported:
                    reported = True
                    log.exception("listener failed; reopening it", extra={"audio_s": round(self._audio_s, 2)})
                    self._t.send(ErrorMessage(code="listen_failed", message=f"listening failed: {exc}"))
            finally:
                with contextlib.suppress(RuntimeError):  # still running in a listener's task: it goes with it
                    await frames.aclose()
            self._drop_held()  # its utterance belonged to the broken listener
            self._in_speech = self._speaking = False
            self._answer_carried()  # and so did any speech that carried a reply over
            self._sync_activity()
            if self._audio_s == state.opened_at_s:
                log.error("listening stopped: the listener fails before reading any audio")
                await self._t.closed.wait()
                return

    def _on_listen_event(self, event: ListenEvent, state: _Listening) -> None:
        try:
            self._on_heard(event, state)
        finally:
            if isinstance(event, SpeechStarted | Utterance):
                self._in_speech = isinstance(event, SpeechStarted)
            # the player speaks, or what they said is still being transcribed
            self._speaking = self._in_speech or bool(state.timelines)
            self._sync_activity()

    def _sync_activity(self) -> None:
        """Tell the server whether this session is active: its player speaks, or a reply to them is under way
        (a greeting is not: it needs no model, and the character's prompt is computed meanwhile)."""
        self._s.activity.set(self, self._speaking or (self._turn is not None and bool(self._turn_user_text)))

    async def _warm(self) -> None:
        """The next prompt's prefix, computed while no session is active (stopped when one becomes active)."""
        with contextlib.suppress(Yielded):
            await self._s.activity.run(self._manager.warm)

    def _on_heard(self, event: ListenEvent, state: _Listening) -> None:
        now = time.monotonic()
        if isinstance(event, SpeechStarted):
            self._on_speech_started()
        elif isinstance(event, SpeechPaused):
            state.paused_at_s = event.at_s
        elif isinstance(event, SpeechResumed):
            self._drop_held()  # it was only a pause
        elif isinstance(event, Utterance):
            held = self._held
            timeline = held.turn.timeline if held is not None and held.utterance == event.index else Timeline()
            speech_end_s = event.speech_end_s
            if speech_end_s is None:  # an utterance that does not say: it keeps pre_roll_ms of trailing silence
                speech_end_s = event.end_s - self._opts.endpoint.pre_roll_ms / 1000
            timeline.mark("speech_end", self._clock_at(state.opened_at_s + speech_end_s, now))
            timeline.mark("endpoint", now)
            state.timelines[event.index] = timeline
        elif isinstance(event, DecodeFailed):
            self._on_decode_failed(event, state)
        elif isinstance(event, Transcript):
            text = event.text.strip()
            if event.tentative:
                if text:
                    self._preempt(event.utterance, text, self._clock_at(state.opened_at_s + state.paused_at_s, now))
                return
            if not event.final:
                if text:
                    self._t.send(TranscriptMessage(text=text, final=False))
                return
            timeline = state.timelines.pop(event.utterance, Timeline())
            timeline.mark("asr_final", now)
            held = self._held
            if held is not None and held.utterance == event.utterance and held.text == text:
                self._held = None
                self._t.send(TranscriptMessage(text=text, final=True, turn=held.turn.number))
                self.transcripts.append(text)
                held.turn.release()  # the reply is ready (or nearly): it speaks now
                return
            self._drop_held()  # other words (or none): the reply to the guess is not this one
            if not text:
                self._answer_carried()
                return
            self._t.send(TranscriptMessage(text=text, final=True, turn=self._turns + 1))
            self.transcripts.append(text)
            self._on_user_text(text, timeline)

    def _on_decode_failed(self, event: DecodeFailed, state: _Listening) -> None:
        """The ASR failed on an utterance: say so; a failed final means that utterance goes unanswered."""
        log.warning(
            "speech recognition failed",
            extra={"utterance": event.utterance, "final": event.final, "reason": repr(event.error)},
        )
        if not event.final:
            self._error("asr_failed", "live transcription failed; the final transcript is still to come")
            return
        self._answer_carried()
        state.timelines.pop(event.utterance, None)
        held = self._held
        if held is not None and held.utterance == event.utterance:
            self._drop_held()
        self._error("asr_failed", f"what you said could not be transcribed ({event.error}); please say it again")

    def _clock_at(self, audio_s: float, now: float) -> float:
        """The monotonic time of ``audio_s`` in the microphone stream: audio arrives in real time, so it was
        (audio read so far - audio_s) ago."""
        return now - max(0.0, self._audio_s - audio_s)

    async def _frames(self) -> AsyncGenerator[AudioFrame, None]:
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
        if turn is None:
            return
        if turn.speaking:
            log.info("barge-in", extra={"turn": turn.number})
            self._interrupt()
        else:
            self._carry_over(turn)

    def _carry_over(self, turn: Turn) -> None:
        """The player goes on before the reply began (an end of turn that was not one): the reply is dropped
        unheard, and what it answered is answered together with what they say next. The model stops at once
        (on a small machine, a reply nobody will hear would slow the next one and the speech recognition)."""
        if self._turn_user_text:
            self._carried = f"{self._carried} {self._turn_user_text}".strip()
            self._merged.add(turn.number)
        self._interrupt()

    def _answer_carried(self) -> None:
        """The player's speech after a carried-over reply came to nothing (no words): answer what was carried."""
        carried, self._carried = self._carried, ""
        if carried:
            timeline = Timeline()
            timeline.mark("speech_end")
            self._start_turn(carried, lambda turn: self._reply(carried, timeline, turn), timeline)

    async def _handle_messages(self) -> None:
        async for item in self._t.messages():
            try:
                self._on_message(item)
            except Exception as exc:  # one message's failure is that message's: the session goes on
                log.exception("message step failed", extra={"message": type(item).__name__})
                self._error("message_failed", f"could not handle that message: {exc}")

    def _on_message(self, item: ClientMessage | ProtocolError) -> None:
        try:
            self._on_client_message(item)
        finally:
            self._sync_activity()

    def _on_client_message(self, item: ClientMessage | ProtocolError) -> None:
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
        self._drop_held()
        turn = self._turn
        carried, self._carried = self._carried, ""
        if carried:  # the reply to the words before these was dropped when the player went on: answer all of it
            text = f"{carried} {text}"
        elif turn is not None and not turn.speaking and self._turn_user_text and not typed:
            # the user went on before the reply started: answer everything they said, once
            text = f"{self._turn_user_text} {text}"
            self._merged.add(turn.number)
        self._start_turn(text, lambda turn: self._reply(text, timeline, turn), timeline)

    def _preempt(self, utterance: int, text: str, speech_end: float) -> None:
        """Start the reply to a tentative transcript, held until the utterance ends on the same words."""
        if not self._opts.preemptive or self._turn is not None:
            return  # only from a quiet character: a turn in progress is answered or merged the usual way
        timeline = Timeline()
        timeline.mark("speech_end", speech_end)
        timeline.mark("asr_final")
        self._start_turn(text, lambda turn: self._reply(text, timeline, turn), timeline, held=True)
        assert self._turn is not None and self._turn_task is not None
        self._held = _Held(utterance, text, self._turn, self._turn_task)

    def _drop_held(self) -> None:
        """The user went on (or said something else): the held reply is cancelled, unseen and unheard."""
        held, self._held = self._held, None
        if held is None:
            return
        self._forget_turn(held.turn)
        held.task.cancel()

    def _forget_turn(self, turn: Turn) -> None:
        """A turn the player never saw: it is no longer the current one, and its number goes to the next."""
        if self._turn is turn:
            self._turn, self._turn_user_text = None, ""
            if self._turns == turn.number:
                self._turns -= 1

    async def _reply(self, text: str, timeline: Timeline, turn: Turn) -> AsyncIterator[ReplyEvent]:
        memories: list[str] = []
        try:
            recalled = await asyncio.wait_for(
                self._s.memory.recall(
                    self._character.id, self._player, text, k=self._opts.recall_k, budget_s=self._opts.recall_budget_s
                ),
                timeout=self._opts.recall_budget_s * 4,
            )
            memories = [r.memory.text for r in recalled]
        except Exception as exc:  # recall is best effort: the reply goes on without memories, counted as degraded
            if isinstance(exc, MemoryRecallError):
                degraded = exc.reason
            else:  # a store that broke its contract: over four budgets, or an error it did not report as one
                degraded = "timeout" if isinstance(exc, TimeoutError) else "error"
            self._s.observer.error("memory_recall_timeout" if degraded == "timeout" else "memory_recall_error")
            log.warning("memory recall degraded", extra={"reason": degraded, "error": repr(exc)})
        timeline.mark("recall_done")
        replies = self._manager.reply(text, memories=memories, on_first_token=lambda: timeline.mark("llm_first_token"))
        said = 0  # chars of the reply text so far (where an apology would follow)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(replies), self._opts.llm_timeout_s)
                except StopAsyncIteration:
                    return
                if isinstance(event, ReplySentence):
                    said = event.start_char + len(event.text)
                yield event
        except (TimeoutError, DialogueError) as exc:
            # the model is down or stalled: say so, in the character's voice, and go on listening
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            log.warning("llm unavailable", extra={"reason": reason})
            self._error("llm_unavailable", f"the character's mind is unavailable: {reason}", turn)
            # the reply ends with the apology, after whatever was said (a worker that died mid-reply)
            start = said + 1 if said else 0
            yield ReplySentence(text=self._opts.apology, start_char=start)
            yield ReplyDone(full_text=self._opts.apology)  # (the Turn keeps the whole text it spoke)
        finally:
            close = getattr(replies, "aclose", None)
            if close is not None:
                await close()

    def _start_turn(
        self,
        user_text: str | None,
        source: Callable[[Turn], AsyncIterator[ReplyEvent]],
        timeline: Timeline,
        *,
        held: bool = False,
    ) -> None:
        previous = self._turn_task
        self._turns += 1
        turn = Turn(self._turns, lambda: source(turn), self._s.tts, self._t.speaker, self._t.send, timeline, held=held)
        self._turn = turn
        self._turn_user_text = user_text or ""
        self._turn_task = asyncio.create_task(self._run_turn(turn, user_text, previous), name=f"turn-{turn.number}")
        self._turn_task.add_done_callback(lambda _: self._finish_unstarted(turn, user_text))

    def _finish_unstarted(self, turn: Turn, user_text: str | None) -> None:
        """A turn cancelled before its task ran (a reply dropped at once) never reached its own cleanup."""
        if not turn.finished:
            self._finish(turn, user_text, "interrupted", asked=False)

    async def _run_turn(self, turn: Turn, user_text: str | None, previous: asyncio.Task[None] | None) -> None:
        exchanges = -1  # the dialogue history's exchanges before this turn's reply
        outcome = "done"
        try:
            if previous is not None and not previous.done():
                previous.cancel()
                await asyncio.wait([previous])  # its end, whatever it was; a cancel of this turn still propagates
            exchanges = self._manager.exchanges
            turn.send(StateMessage(state="thinking", turn=turn.number))
            await turn.run()
        except asyncio.CancelledError:
            outcome = "interrupted"
            raise
        except VoiceError as exc:  # the voice failed: show the words at least
            outcome = "failed"
            log.error("speech synthesis failed", extra={"turn": turn.number, "reason": str(exc)})
            self._error("tts_failed", f"the character's voice failed: {exc}", turn)
            if turn.text:
                turn.send(ReplyMessage(text=turn.text, final=True, turn=turn.number))
        except Exception as exc:
            outcome = "failed"
            log.exception("turn failed", extra={"turn": turn.number})
            self._error("reply_failed", f"the character could not answer: {exc}", turn)
        finally:
            try:
                self._finish(turn, user_text, outcome, asked=0 <= exchanges < self._manager.exchanges)
            except Exception as exc:  # the turn ends anyway: the next one must not inherit it
                log.exception("turn cleanup failed", extra={"turn": turn.number})
                self._error("reply_failed", f"the character could not finish its answer: {exc}", turn)
                self._abandon(turn)

    def _abandon(self, turn: Turn) -> None:
        """``turn`` is over, however far its cleanup got: it is no longer current and the player is listened to."""
        if self._held is not None and self._held.turn is turn:
            self._held = None
        if self._turn is turn:
            self._turn, self._turn_user_text = None, ""
            if turn.released:
                self._t.send(StateMessage(state="listening", turn=turn.number))
        self._sync_activity()

    def _finish(self, turn: Turn, user_text: str | None, outcome: str, *, asked: bool) -> None:
        turn.finished = True
        merged = turn.number in self._merged
        self._merged.discard(turn.number)
        if not turn.released:  # a preemptive reply the player never got: no trace
            if user_text is not None and asked:
                self._manager.retract(user_text)
            self._s.observer.turn_finished({}, "discarded")
            if self._held is not None and self._held.turn is turn:
                self._held = None  # it failed while held: the utterance's end starts a turn the usual way
            self._forget_turn(turn)
            self._sync_activity()
            return
        heard = turn.text.strip() if outcome == "done" else turn.heard_text()
        done = self._manager.last_done if asked and outcome == "done" else None
        if done is not None and done.echoes:
            self._s.observer.error("scaffold_echo")  # the model read its prompt back (left unsaid)
        if outcome == "done" and user_text is not None and (not heard or (done is not None and done.recovery)):
            # the model said nothing speakable (nothing, only markup, only its prompt read back), counted also when
            # the manager mended it: asked again (empty_reply_retried) or said the fallback line (_fallback)
            self._s.observer.error("empty_reply")
            if done is not None and done.recovery:
                self._s.observer.error(f"empty_reply_{done.recovery}")
            log.warning("the reply had nothing to say aloud", extra={"turn": turn.number})
        if outcome != "done" and turn.speaking:
            self._t.speaker.clear()
            self._t.send(InterruptedMessage(turn=turn.number, heard=heard))
        carried = user_text is not None and merged and not turn.speaking  # a later turn answers these words
        if user_text is not None:
            if carried and asked:
                self._manager.retract(user_text)
            elif not carried:
                self._manager.heard(len(heard))
            superseded = self._turn is not turn and not turn.speaking
            if not superseded and not carried:
                self._remember(user_text, heard)
        self._t.send(MetricsMessage(turn=turn.number, timeline_ms=turn.timeline.relative_ms()))
        self._s.observer.turn_finished(dict(turn.timeline.marks), "merged" if carried else outcome)
        if self._turn is turn:
            self._turn = None
            self._t.send(StateMessage(state="listening", turn=turn.number))
            if user_text is not None and not carried:  # while the player listens and thinks: the next prompt's prefix
                self._spawn(self._warm(), WARM_TASK)
        self._sync_activity()

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

    def _error(self, code: str, message: str, turn: Turn | None = None) -> None:
        """Count and report an error (through ``turn``: a held turn's errors reach the player only with it)."""
        self._s.observer.error(code)
        (turn.send if turn is not None else self._t.send)(ErrorMessage(code=code, message=message))

    def _interrupt(self) -> None:
        if self._turn_task is not None and not self._turn_task.done():
            self._turn_task.cancel()

    async def _cancel_turn(self) -> None:
        task = self._turn_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in list(self._background):
            if job.get_name() == WARM_TASK:  # a prompt warm-up is worth nothing once the session ends
                job.cancel()
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A background task of this session, kept referenced until done and awaited when the session closes."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
