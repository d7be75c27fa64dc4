"""One character in a room: its dialogue manager, its voice, and its replies, at most one at a time.

A reply is a ``Turn`` (llmasos/turn.py) and owns itself from start to end; the seat starts it, holds it
(a preemptive reply, prepared from a tentative transcript and released when the utterance really ends), drops
it, carries its words over (the player went on before it made a sound), and finishes it: what was heard goes
into the dialogue history and into memory under the player it answered; the unheard rest and its actions
are dropped. The room decides whom the seat answers and when it may speak (``Floor``, through ``gate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from dialogue.manager import DialogueManager
from dialogue.types import Character, ReplyEvent
from llmasos.activity import Activity, Yielded
from llmasos.ask import Ask, said_line
from llmasos.recollection import Recollection
from llmasos.reply import reply_events
from llmasos.services import ConversationOptions, Services
from llmasos.turn import Speaker, Timeline, Turn, TurnNumbers, speak_text
from rtc.protocol import ErrorMessage, InterruptedMessage, MetricsMessage, ReplyMessage, StateMessage
from voice.errors import VoiceError
from voice.types import TTS

log = logging.getLogger(__name__)

WARM_TASK = "conversation-warm-prompt"

Send = Callable[[BaseModel], None]


@dataclass
class _Held:
    """A preemptive reply to ``ask``, prepared from the tentative transcript of utterance ``utterance``."""

    ask: Ask
    utterance: int
    turn: Turn
    task: asyncio.Task[None]

    @property
    def player(self) -> str:
        return self.ask.player

    @property
    def text(self) -> str:
        return self.ask.text


# ``on_ended(seat, player, ask, heard)``: a reply reached the room and is over; ``player`` is whom it answered or
# greeted, ``ask`` the words it answered (None for a greeting), ``heard`` what was heard of it
Ended = Callable[["Seat", str | None, Ask | None, str], None]


class Seat:
    def __init__(
        self,
        services: Services,
        manager: DialogueManager,
        tts: TTS,
        speaker: Speaker,
        send: Send,
        options: ConversationOptions,
        numbers: TurnNumbers,
        *,
        gate: Callable[[Seat], Awaitable[None]] | None = None,
        on_change: Callable[[], None] = lambda: None,
        on_ended: Ended | None = None,
    ) -> None:
        self._s = services
        self.manager = manager
        self.character: Character = manager.character
        self._tts = tts
        self.speaker = speaker
        self._send = send
        self._opts = options
        self._numbers = numbers
        self._gate = gate
        self._on_change = on_change
        self._on_ended = on_ended
        self.turn: Turn | None = None
        self._task: asyncio.Task[None] | None = None
        self.ask: Ask | None = None  # what the current turn answers (None for a greeting)
        self.player: str | None = None  # whom the current turn answers (or greets)
        self.held: _Held | None = None
        self.paused_for: str | None = None  # the player whose speech paused this seat's reply
        self._merged: set[int] = set()  # turns whose words a later turn answers together with what followed
        self._carried: dict[str, Ask] = {}  # per player: words whose reply was dropped when they went on
        self._overheard: list[tuple[str, str]] = []  # (speaker, words) heard during a reply, for the history after
        self._rewarm = False  # the history grew since the prompt warm-up under way began
        self._events: list[Ask] = []  # happenings to answer once the reply under way is over
        self._background: set[asyncio.Task[None]] = set()  # memory writes and warm-up
        self._memory = Recollection(services, self.character.id, options.memory_writes_per_min, self._spawn)

    @property
    def id(self) -> str:
        return self.character.id

    @property
    def active(self) -> bool:
        """A reply to someone's words is under way (a greeting needs no model: it is not)."""
        return self.turn is not None and self.ask is not None

    @property
    def quiet(self) -> bool:
        return self.turn is None

    # ---- what the room asks --------------------------------------------------------------------------------

    def warm_memory(self, player: str) -> None:
        self._memory.warm(player)

    def greet(self, player: str | None) -> None:
        if self.character.greeting:
            self._start(None, lambda _: speak_text(self.character.greeting), Timeline(), player=player)

    def warm(self) -> None:
        """Compute the character's prompt ahead, while nobody is active (once more if a warm-up is under way:
        the history grew since it began)."""
        self._rewarm = True
        if not any(job.get_name() == WARM_TASK for job in self._background):
            self._spawn(self._warm(), WARM_TASK)

    def answer(self, ask: Ask, timeline: Timeline, *, typed: bool = False) -> None:
        """Answer ``ask``."""
        self.drop_held()
        carried = self._carried.pop(ask.player, None)
        turn, current = self.turn, self.ask
        if carried is not None:  # the reply to the words before these was dropped when the player went on
            ask = carried.then(ask.text)
        elif not typed and turn is not None and not turn.speaking and current and current.player == ask.player:
            # the player went on before the reply started: answer everything they said, once
            ask = current.then(ask.text)
            self._merged.add(turn.number)
        self._start_reply(ask, timeline)

    def preempt(self, ask: Ask, utterance: int, speech_end: float) -> None:
        """Start the reply to a tentative transcript, held until the utterance ends on the same words."""
        if not self._opts.preemptive or self.turn is not None:
            return  # only from a quiet character: a turn in progress is answered or merged the usual way
        timeline = Timeline()
        timeline.mark("speech_end", speech_end)
        timeline.mark("asr_final")
        self._start_reply(ask, timeline, held=True)
        assert self.turn is not None and self._task is not None
        self.held = _Held(ask, utterance, self.turn, self._task)

    def held_for(self, player: str, utterance: int) -> _Held | None:
        held = self.held
        return held if held is not None and held.player == player and held.utterance == utterance else None

    def release(self) -> int | None:
        """The utterance ended on the held reply's words: it reaches the room now. Returns its turn number."""
        held, self.held = self.held, None
        if held is None:
            return None
        held.turn.release()
        return held.turn.number

    def drop_held(self, player: str | None = None) -> None:
        """The player went on (or said something else): the held reply is cancelled, unseen and unheard."""
        held = self.held
        if held is None or (player is not None and held.player != player):
            return
        self.held = None
        log.debug("held reply dropped", extra={"turn": held.turn.number})
        self._forget(held.turn)
        held.task.cancel()

    def speech_began(self, player: str) -> None:
        """``player`` started to speak: a reply to them that made no sound yet is carried over (the floor
        decides about a reply that is speaking)."""
        turn = self.turn
        if turn is None or self.player != player or turn.speaking:
            return
        ask = self.ask
        if ask is not None:  # an end of turn that was not one: the reply is dropped unheard, its words carried
            before = self._carried.get(player)
            self._carried[player] = before.then(ask.text) if before is not None else ask
            self._merged.add(turn.number)
        self.interrupt()

    def carried(self, player: str) -> str:
        carried = self._carried.get(player)
        return carried.text if carried is not None else ""

    def answer_carried(self, player: str) -> None:
        """The player's speech after a carried-over reply came to nothing (no words): answer what was carried."""
        carried = self._carried.pop(player, None)
        if carried is not None:
            timeline = Timeline()
            timeline.mark("speech_end")
            self._start_reply(carried, timeline)

    def world_event(self, ask: Ask) -> None:
        """Something happened in the world that the character answers (``ask.event``): now, or once the reply
        under way is over (several, together)."""
        self._events.append(ask)
        if self.turn is None:
            self._answer_events()

    def note(self, text: str) -> None:
        """Something the character now knows happened (a world action that worked): in its history."""
        self.overhear("", text, None)

    def overhear(self, speaker: str, text: str, player: str | None) -> None:
        """In a room, ``speaker`` said ``text``, not to this character (or it is another character's reply, as
        heard). It goes into the history (after the reply under way, if one is) and into memory under
        ``player``: the person who said it, or whom the reply answered."""
        if not text.strip():
            return
        if self.turn is None:
            self.manager.overheard(speaker, text)
            self.warm()  # asked next, it computes only the words it answers
        else:
            self._overheard.append((speaker, text))
        if player is not None:
            self._memory.write(player, [said_line(speaker, text)])

    def pause(self) -> None:
        """The person this reply answers began to speak: its voice holds where it is until their words are
        known (``resume``, or ``interrupt``)."""
        if self.paused_for is not None:
            return  # held already (at the first sound of the speech it now knows)
        if self.turn is not None and self.turn.speaking and self.player is not None:
            self.speaker.pause()
            self.paused_for = self.player
            self._send(StateMessage(state="paused", turn=self.turn.number, at_ms=self.turn.hold()))

    def resume(self) -> None:
        """The words were only a backchannel, or none: the reply plays on from where it held."""
        if self.paused_for is None:
            return
        self.paused_for = None
        self.speaker.resume()
        if self.turn is not None:
            at_ms, held_ms = self.turn.play_on() or (None, None)
            self._send(StateMessage(state="speaking", turn=self.turn.number, at_ms=at_ms, held_ms=held_ms))

    def interrupt(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def close(self) -> None:
        """Every turn is finalised (heard text stored), then the background work ends."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for job in list(self._background):
            if job.get_name() == WARM_TASK:  # a prompt warm-up is worth nothing once the session ends
                job.cancel()
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def error(self, code: str, message: str, turn: Turn | None = None) -> None:
        """Count and report an error (through ``turn``: a held turn's errors reach the room only with it)."""
        self._s.observer.error(code)
        (turn.send if turn is not None else self._send)(ErrorMessage(code=code, message=message))

    # ---- turns ---------------------------------------------------------------------------------------------

    def _start(
        self,
        ask: Ask | None,
        source: Callable[[Turn], AsyncIterator[ReplyEvent]],
        timeline: Timeline,
        *,
        held: bool = False,
        player: str | None = None,
    ) -> None:
        """A turn answering ``ask`` (or greeting ``player``)."""
        if ask is not None:
            player = ask.player
        previous = self._task
        gate = self._gate
        turn = Turn(
            self._numbers.next(self.id),
            lambda: source(turn),
            self._tts,
            self.speaker,
            self._send,
            timeline,
            held=held,
            gate=(lambda: gate(self)) if gate is not None else None,
        )
        self.turn, self.player, self.ask = turn, player, ask
        self._task = asyncio.create_task(self._run(turn, player, ask, previous), name=f"turn-{turn.number}")
        self._task.add_done_callback(lambda _: self._finish_unstarted(turn, player, ask))
        self._on_change()

    def _start_reply(self, ask: Ask, timeline: Timeline, *, held: bool = False) -> None:
        """A turn whose reply is the model's answer to ``ask``."""
        self._start(ask, lambda t: self._reply(ask, timeline, t), timeline, held=held)

    def _finish_unstarted(self, turn: Turn, player: str | None, ask: Ask | None) -> None:
        """A turn cancelled before its task ran (a reply dropped at once) never reached its own cleanup."""
        if not turn.finished:
            self._finish(turn, player, ask, "interrupted", asked=False)

    async def _run(self, turn: Turn, player: str | None, ask: Ask | None, previous: asyncio.Task[None] | None) -> None:
        exchanges = -1  # the dialogue history's exchanges before this turn's reply
        outcome = "done"
        try:
            if previous is not None and not previous.done():
                previous.cancel()
                await asyncio.wait([previous])  # its end, whatever it was; a cancel of this turn still propagates
            exchanges = self.manager.exchanges
            turn.send(StateMessage(state="thinking", turn=turn.number))
            await turn.run()
        except asyncio.CancelledError:
            outcome = "interrupted"
            raise
        except VoiceError as exc:  # the voice failed: show the words at least
            outcome = "failed"
            log.error("speech synthesis failed", extra={"turn": turn.number, "reason": str(exc)})
            self.error("tts_failed", f"the character's voice failed: {exc}", turn)
            if turn.text:
                turn.send(ReplyMessage(text=turn.text, final=True, turn=turn.number))
        except Exception as exc:
            outcome = "failed"
            log.exception("turn failed", extra={"turn": turn.number})
            self.error("reply_failed", f"the character could not answer: {exc}", turn)
        finally:
            try:
                self._finish(turn, player, ask, outcome, asked=0 <= exchanges < self.manager.exchanges)
            except Exception as exc:  # the turn ends anyway: the next one must not inherit it
                log.exception("turn cleanup failed", extra={"turn": turn.number})
                self.error("reply_failed", f"the character could not finish its answer: {exc}", turn)
                self._abandon(turn)

    def _forget(self, turn: Turn) -> None:
        """A turn nobody saw: it is no longer the current one, and its number goes to the next."""
        if self.turn is turn:
            self._quiet()
            self._numbers.give_back(turn.number)
        self._on_change()

    def _abandon(self, turn: Turn) -> None:
        """``turn`` is over, however far its cleanup got: it is no longer current and the room is listened to."""
        if self.held is not None and self.held.turn is turn:
            self.held = None
        if self.turn is turn:
            self._quiet()
            if turn.released:
                self._send(StateMessage(state="listening", turn=turn.number))
        self._on_change()

    def _finish(self, turn: Turn, player: str | None, ask: Ask | None, outcome: str, *, asked: bool) -> None:
        turn.finished = True
        merged = turn.number in self._merged
        self._merged.discard(turn.number)
        if not turn.released:  # a preemptive reply nobody got: no trace
            if ask is not None and asked:
                self.manager.retract(ask.said)
            self._s.observer.turn_finished({}, "discarded")
            if self.held is not None and self.held.turn is turn:
                self.held = None  # it failed while held: the utterance's end starts a turn the usual way
            self._forget(turn)
            return
        heard = turn.text.strip() if outcome == "done" else turn.heard_text()
        done = self.manager.last_done if asked and outcome == "done" else None
        if done is not None and done.echoes:
            self._s.observer.error("scaffold_echo")  # the model read its prompt back (left unsaid)
        if outcome == "done" and ask is not None and (not heard or (done is not None and done.recovery)):
            # the model said nothing speakable (nothing, only markup, only its prompt read back), counted also when
            # the manager mended it: asked again (empty_reply_retried) or said the fallback line (_fallback)
            self._s.observer.error("empty_reply")
            if done is not None and done.recovery:
                self._s.observer.error(f"empty_reply_{done.recovery}")
            log.warning("the reply had nothing to say aloud", extra={"turn": turn.number})
        if outcome != "done" and turn.speaking:
            self.speaker.clear()
            self._send(InterruptedMessage(turn=turn.number, heard=heard))
        if self.turn is turn or self.paused_for is not None:
            self.paused_for = None
            self.speaker.resume()  # a turn held paused ends: the next one plays
        carried = ask is not None and merged and not turn.speaking  # a later turn answers these words
        if ask is not None:
            if carried and asked:
                self.manager.retract(ask.said)
            elif not carried:
                self.manager.heard(len(heard))
            superseded = self.turn is not turn and not turn.speaking
            if not superseded and not carried:
                self._remember(ask, heard)
        self._send(MetricsMessage(turn=turn.number, timeline_ms=turn.timeline.relative_ms()))
        self._s.observer.turn_finished(dict(turn.timeline.marks), "merged" if carried else outcome)
        if self.turn is turn:
            self._quiet()
            self._send(StateMessage(state="listening", turn=turn.number))
            if ask is not None and not carried:  # while the room listens: the next prompt's prefix
                self.warm()
        self._on_change()
        if self._on_ended is not None and not carried:
            self._on_ended(self, player, ask, heard if turn.speaking else "")

    def _quiet(self) -> None:
        """No turn any more: what was overheard meanwhile goes into the history now, after the reply; what
        happened in the world meanwhile is answered next."""
        self.turn, self.player, self.ask = None, None, None
        for speaker, text in self._overheard:
            self.manager.overheard(speaker, text)
        self._overheard.clear()
        if self._events:
            asyncio.get_running_loop().call_soon(self._answer_events)

    def _answer_events(self) -> None:
        if self.turn is not None or not self._events:
            return  # a reply began meanwhile: the events wait for its end
        events, self._events = self._events, []
        ask = replace(events[-1], text=" ".join(e.text for e in events))
        timeline = Timeline()
        self._start_reply(ask, timeline)

    def _reply(self, ask: Ask, timeline: Timeline, turn: Turn) -> AsyncIterator[ReplyEvent]:
        return reply_events(
            self._s,
            self.manager,
            self._opts,
            ask.player,
            ask.said,
            timeline,
            lambda c, m: self.error(c, m, turn),
            world=ask.world,
        )

    def _remember(self, ask: Ask, heard: str) -> None:
        self._memory.write(ask.player, ask.memory_lines(self.character.name, heard))

    async def _warm(self) -> None:
        """The next prompt's prefix, computed while no session is active (stopped when one becomes active)."""
        activity: Activity = self._s.activity
        while self._rewarm:
            self._rewarm = False
            try:
                await activity.run(self.manager.warm)
            except Yielded:  # someone became active: again once the room is idle
                self._rewarm = True

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A background task of this seat, kept referenced until done and awaited when the room closes."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
