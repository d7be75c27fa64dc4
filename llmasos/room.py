"""A room: participants (people, each listened to on their own) and seats (characters, each with its own
voice and replies), a policy for whom an utterance is for (``Addressing``) and one for who speaks
(``Floor``). A 1:1 conversation is a room of one participant and one character.

    participant ──Heard──► Room ──► Addressing.decide ──► Seat.answer / preempt / release ──► Turn
        ▲                   │            (addressed)             │ gate: Floor.want (one voice at a time,
        │                   ├──► Floor: barge-in by the one       │       never over someone mid-utterance)
        │                   │    answered, or by speech for it    ▼
        └── wire messages ◄─┴── made in one place (``Wire``, llmasos/wire.py): stamped with speaker and
                                 character in a room

The audio edge is the room's: in a 1:1 conversation the character speaks into the participant's own speaker
track; in a room every character has a VoiceBuffer in the room's mixer (``rtc.mixer``), and every
participant hears the mix of the characters and the others (mix-minus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from dialogue.manager import DialogueManager
from llmasos.addressing import Addressed, Addressing, AddressOptions, Named, vocabulary
from llmasos.ask import Ask
from llmasos.backchannel import is_backchannel
from llmasos.floor import Decision, Floor, Grant, Pause, Stop
from llmasos.participant import (
    ActionResult,
    Final,
    Focus,
    Heard,
    Interrupt,
    ListenerBroke,
    NotHeard,
    Partial,
    Participant,
    Played,
    SpeechBegan,
    SpeechEnded,
    SpeechWentOn,
    Tentative,
    Transport,
    Typed,
    VoiceDropped,
    VoiceOnset,
    World,
)
from llmasos.seat import Seat
from llmasos.services import ConversationOptions, Services
from llmasos.turn import Speaker, Timeline, TurnNumbers
from llmasos.wire import Wire
from rtc.mixer import RoomMixer
from rtc.protocol import ErrorMessage, StateMessage
from voice.types import TTS

log = logging.getLogger(__name__)

DEFAULT_OPTIONS = ConversationOptions()
DEFAULT_ADDRESS = AddressOptions()


class Room:
    """``join`` a participant (it returns when they leave); ``add_character`` before anyone joins."""

    def __init__(
        self,
        services: Services,
        options: ConversationOptions = DEFAULT_OPTIONS,
        *,
        room_id: str | None = None,
        address: AddressOptions = DEFAULT_ADDRESS,
        mixer: RoomMixer | None = None,
    ) -> None:
        self._s = services
        self._opts = options
        self.id = room_id  # None: a 1:1 conversation (its wire stays the 1:1 wire: nothing stamped)
        self.mixer = mixer
        self.numbers = TurnNumbers()
        self.floor = Floor(pause_first=bool(self._opts.backchannels))
        self.seats: dict[str, Seat] = {}
        self.participants: dict[str, Participant] = {}
        self.wire = Wire(self.participants, stamped=room_id is not None)  # every message sent, made in one place
        self.addressing = Addressing([], address)
        self.transcripts: dict[str, list[str]] = {}  # per player, their final transcripts (kept after they leave)
        self.worlds: dict[str, str] = {}  # per player here, what their game says is so (their `world` facts)
        # the names people will say here, as they are now: the speech recognition is told them
        self.vocabulary = ""
        self._grants: dict[str, asyncio.Event] = {}
        self._mixing: asyncio.Task[None] | None = None

    @property
    def stamped(self) -> bool:
        return self.wire.stamped

    # ---- who is here -----------------------------------------------------------------------------------------

    def add_character(self, manager: DialogueManager, tts: TTS, speaker: Speaker | None = None) -> Seat:
        """A character's seat; it speaks into ``speaker`` (1:1) or its own voice in the room's mix."""
        character = manager.character
        if speaker is None:
            if self.mixer is None:
                raise ValueError("a character needs a speaker, or the room a mixer")
            speaker = self.mixer.add_voice(character.id)

        seat = Seat(
            self._s,
            manager,
            tts,
            speaker,
            lambda message: self.wire.from_character(character.id, message),
            self._opts,
            self.numbers,
            gate=self._wait_floor,
            on_change=lambda: self._seat_changed(seat),
            on_ended=self._seat_ended,
        )
        self.seats[character.id] = seat
        self.addressing = Addressing(
            [Named.character(s.character) for s in self.seats.values()], self.addressing.options
        )
        for player, p in self.participants.items():
            self.addressing.join(player, p.name)
        self._names_changed()
        return seat

    async def join(self, player: str, name: str, transport: Transport, *, greet: bool = True) -> None:
        """``player`` is in the room until their transport closes; every reply to them is finalised (heard text
        stored) before this returns. ``greet``: false, nobody greets them."""
        if player in self.participants:
            raise ValueError(f"{player!r} is already in this room")
        participant = Participant(
            player, name, transport, self._s.open_listener, self, self._opts.endpoint.pre_roll_ms, self._opts.echo
        )
        self.participants[player] = participant
        self.transcripts[player] = participant.transcripts
        self.addressing.join(player, name)
        self._names_changed()
        if self.mixer is not None:
            mixer = self.mixer
            participant.on_frame = lambda frame: mixer.feed(player, frame)
            if self._mixing is None:
                self._mixing = asyncio.create_task(self.mixer.run(), name=f"room-{self.id}-mix")
        self.wire.announce(True, player, list(self.seats))
        participant.send(StateMessage(state="listening"))
        for seat in self.seats.values():
            seat.warm_memory(player)
        first = next(iter(self.seats.values()), None)
        if greet and self._opts.greet and first is not None and self._all_quiet():  # never over a reply in progress
            first.greet(player)
        for seat in self.seats.values():
            seat.warm()  # the character's prompt, during the greeting
        tasks = [
            asyncio.create_task(participant.listen(), name=f"room-listen-{player}"),
            asyncio.create_task(participant.read_messages(), name=f"room-messages-{player}"),
        ]
        closed = asyncio.create_task(transport.closed.wait())
        try:
            await asyncio.wait([closed, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("participant task failed", exc_info=task.exception())
        finally:
            closed.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            participant.in_speech = participant.speaking = False
            self._sync_activity()
            await self._leave(participant)

    async def _leave(self, participant: Participant) -> None:
        player = participant.id
        for decision in self.floor.speech_ended(player):
            self._apply(decision)
        for seat in self.seats.values():
            seat.drop_held(player)
            if seat.player == player or not self.stamped:
                seat.interrupt()
        last = len(self.participants) == 1
        if last or not self.stamped:
            for seat in self.seats.values():
                await seat.close()
        self.participants.pop(player, None)
        self.worlds.pop(player, None)
        self.addressing.leave(player)
        self._names_changed()
        if self.mixer is not None:
            self.mixer.remove_participant(player)
        if self.participants:
            self.wire.announce(False, player, list(self.seats))
        elif self._mixing is not None:
            self._mixing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mixing
            self._mixing = None
        self._sync_activity()

    # ---- what participants do ------------------------------------------------------------------------------

    def heard(self, participant: Participant, event: Heard) -> None:
        try:
            self._on(participant, event)
        finally:
            self._sync_activity()

    def timeline_for(self, participant: Participant, utterance: int) -> Timeline | None:
        for seat in self.seats.values():
            held = seat.held_for(participant.id, utterance)
            if held is not None:
                return held.turn.timeline
        return None

    def report(self, participant: Participant, code: str, message: str, *, tell: bool = True) -> None:
        self._s.observer.error(code)
        if tell:
            participant.send(ErrorMessage(code=code, message=message))

    def _on(self, p: Participant, event: Heard) -> None:
        player = p.id
        if isinstance(event, VoiceOnset):  # a reply to them holds at once (pause_first); held for nothing, plays on
            for decision in self.floor.onset(player):
                self._apply(decision)
        elif isinstance(event, VoiceDropped):
            self._resume_paused(player)  # it was not speech
        elif isinstance(event, SpeechBegan):
            for decision in self.floor.speech_started(player):
                self._apply(decision)
            for seat in self.seats.values():
                seat.speech_began(player)
        elif isinstance(event, SpeechEnded):
            self._speech_over(player)
        elif isinstance(event, SpeechWentOn):
            log.debug("speech went on after a pause", extra={"player": player})
            for seat in self.seats.values():
                seat.drop_held(player)  # it was only a pause
        elif isinstance(event, Partial):
            self.wire.transcript(p, event.text, final=False)
        elif isinstance(event, Tentative):
            if not is_backchannel(event.text, self._opts.backchannels):
                self._stop_paused(player)  # real words: the paused reply stops now, not at the final transcript
            guess = self.addressing.decide(player, self._with_carried(player, event.text), time.monotonic())
            log.debug("tentative transcript", extra={"player": player, "character": guess.character})
            if guess.character is not None and self._all_quiet():
                self.seats[guess.character].preempt(self._ask(p, event.text), event.utterance, event.speech_end)
        elif isinstance(event, Final):
            self._final(p, event)
        elif isinstance(event, NotHeard):
            self._not_heard(p, event)
        elif isinstance(event, ListenerBroke):
            self._resume_paused(player)
            for seat in self.seats.values():
                seat.drop_held(player)  # its utterance belonged to the broken listener
                seat.answer_carried(player)  # and so did any speech that carried a reply over
            self._speech_over(player)
        elif isinstance(event, Typed):
            if self.stamped:
                self.wire.transcript(p, event.text, final=True)
            self._answer(p, event.text, event.timeline, typed=True)
        elif isinstance(event, Interrupt):
            for seat in self.seats.values():
                if seat.player == player or len(self.seats) == 1:
                    seat.interrupt()
        elif isinstance(event, Focus):
            try:
                self.addressing.focus(player, event.character)
            except ValueError as exc:
                self.report(p, "bad_message", f"focus: {exc}")
        elif isinstance(event, World):
            self.worlds[player] = " ".join(_sentence(fact) for fact in event.facts)
        elif isinstance(event, ActionResult):
            self._action_result(p, event)
        elif isinstance(event, Played):
            self._played(p, event)

    def _final(self, p: Participant, event: Final) -> None:
        player, text = p.id, event.text
        paused = [seat for seat in self.seats.values() if seat.paused_for == player]
        if paused and is_backchannel(text, self._opts.backchannels):
            for seat in paused:  # only "uh-huh" (or no words): the reply speaks on from where it held
                if text:
                    self.wire.transcript(p, text, final=True, turn=None)
                    self.wire.addressed(Addressed(player, seat.id, "backchannel"), None)
                seat.resume()
            log.info("backchannel: the reply goes on", extra={"words": len(text.split())})
            return
        self._stop_paused(player)
        for seat in self.seats.values():
            held = seat.held_for(player, event.utterance)
            if held is None:
                continue
            decision = self.addressing.decide(player, self._with_carried(player, text), time.monotonic())
            if held.text == text and decision.character == seat.id:
                self.wire.transcript(p, text, final=True, turn=held.turn.number)
                self.wire.addressed(decision, held.turn.number)
                self._overheard(p, text, seat)
                seat.release()  # the reply is ready (or nearly): it speaks now
                return
        for seat in self.seats.values():
            seat.drop_held(player)  # other words (or none): the reply to the guess is not this one
        if not text:
            for seat in self.seats.values():
                seat.answer_carried(player)
            return
        self._answer(p, text, event.timeline)

    def _answer(self, p: Participant, text: str, timeline: Timeline, *, typed: bool = False) -> None:
        decision = self.addressing.decide(p.id, self._with_carried(p.id, text), time.monotonic())
        if not typed:
            turn = self.numbers.last + 1 if decision.character is not None else None
            self.wire.transcript(p, text, final=True, turn=turn)
        self._overheard(p, text, self.seats.get(decision.character or ""))
        if decision.character is None:
            self.wire.addressed(decision, None)
            for seat in self.seats.values():
                seat.answer_carried(p.id)  # words carried to a character are still for it
            return
        self.wire.addressed(decision, self.numbers.last + 1)
        for decided in self.floor.addressed(decision):
            self._apply(decided)
        log.debug("player said", extra={"text": text, "typed": typed})  # transcripts: debug logging only
        for seat in self.seats.values():
            if seat.id != decision.character:
                seat.answer_carried(p.id)
        self.seats[decision.character].answer(self._ask(p, text), timeline, typed=typed)

    def _played(self, p: Participant, event: Played) -> None:
        """The client's playback of a turn: the turn's heard text and action release follow the person it speaks
        to (a report for a turn that is over, or from a bystander, changes nothing)."""
        owner = self.numbers.owner(event.turn)
        seat = self.seats.get(owner) if owner is not None else None
        turn = seat.turn if seat is not None else None
        if seat is None or turn is None or turn.number != event.turn:
            return
        if seat.player in (None, p.id) or len(self.participants) == 1:
            turn.report_played(event.at_ms)

    def _action_result(self, p: Participant, event: ActionResult) -> None:
        """The game says how a world action turned out: the character that acted hears it."""
        owner = self.numbers.owner(event.turn)
        seat = self.seats.get(owner) if owner is not None else None
        if seat is None:
            self.report(p, "bad_message", f"action_result: turn {event.turn} is not a recent turn of this session")
            return
        if event.action not in {a.name for a in seat.character.actions}:
            known = ", ".join(a.name for a in seat.character.actions) or "none"
            self.report(
                p, "bad_message", f"action_result: {seat.character.name} has no action {event.action!r} ({known})"
            )
            return
        log.info("action result", extra={"turn": event.turn, "action": event.action, "ok": event.ok})
        who = f" for {p.name}" if self.stamped else ""
        if event.ok:
            seat.note(f"({event.action}{who}: done)")
        else:
            reason = event.reason or "no reason given"
            seat.world_event(self._ask(p, f"({event.action}{who} did not work: {reason})", event=True))

    def _not_heard(self, p: Participant, event: NotHeard) -> None:
        """The ASR failed on an utterance: say so; a failed final means that utterance goes unanswered."""
        if not event.final:
            self.report(p, "asr_failed", "live transcription failed; the final transcript is still to come")
            return
        self._resume_paused(p.id)  # nothing known was said over it
        for seat in self.seats.values():
            seat.answer_carried(p.id)
            if seat.held_for(p.id, event.utterance) is not None:
                seat.drop_held(p.id)
        self.report(p, "asr_failed", f"what you said could not be transcribed ({event.error}); please say it again")

    # ---- the floor -----------------------------------------------------------------------------------------

    async def _wait_floor(self, seat: Seat) -> None:
        """Until ``seat`` may speak: nobody mid-utterance and no other character speaking."""
        granted = asyncio.Event()
        self._grants[seat.id] = granted
        for decision in self.floor.want(seat.id, seat.player):
            self._apply(decision)
        try:
            await granted.wait()
        except BaseException:
            if self._grants.get(seat.id) is granted:
                del self._grants[seat.id]
            for decision in self.floor.withdraw(seat.id):
                self._apply(decision)
            raise

    def _stop_paused(self, player: str) -> None:
        """``player`` said more than a backchannel over a reply that paused for them: it stops (a barge-in)."""
        for seat in [s for s in self.seats.values() if s.paused_for == player]:
            self._apply(Stop(seat.id, "barge_in"))

    def _resume_paused(self, player: str) -> None:
        """What ``player`` said over a reply that paused for them was no words: it plays on."""
        for seat in self.seats.values():
            if seat.paused_for == player:
                seat.resume()

    def _apply(self, decision: Decision) -> None:
        if isinstance(decision, Pause):
            seat = self.seats.get(decision.character)
            if seat is not None:
                seat.pause()
            return
        if isinstance(decision, Grant):
            granted = self._grants.pop(decision.character, None)
            if granted is not None:
                granted.set()
        elif isinstance(decision, Stop):
            seat = self.seats.get(decision.character)
            if seat is not None:
                log.info("barge-in", extra={"turn": seat.turn.number if seat.turn else None, "reason": decision.reason})
                seat.interrupt()

    def _speech_over(self, player: str) -> None:
        for decision in self.floor.speech_ended(player):
            self._apply(decision)

    def _seat_changed(self, seat: Seat) -> None:
        if seat.turn is None:
            for decision in self.floor.withdraw(seat.id):
                self._apply(decision)
        self._sync_activity()

    def _seat_ended(self, seat: Seat, player: str | None, ask: Ask | None, heard: str) -> None:
        """``seat``'s reply is over (however it ended): the others heard what was heard of it; when it answered
        ``player``, their next words may follow up on it."""
        if ask is not None:
            self.addressing.answered(seat.id, ask.player, time.monotonic())
        for other in self.seats.values():
            if other is not seat:
                other.overhear(seat.character.name, heard, player)

    # ---- helpers -------------------------------------------------------------------------------------------

    def _ask(self, p: Participant, text: str, *, event: bool = False) -> Ask:
        """``p``'s words for a character (or, ``event``, what happened in their world): in a room, with their name
        (its model reads "Ann: ..."), and with what their game says is so."""
        return Ask(p.id, text, p.name if self.stamped else None, self.worlds.get(p.id, ""), event)

    def _overheard(self, p: Participant, text: str, addressee: Seat | None) -> None:
        """Every character but the one ``p`` spoke to heard ``text`` (remembered under ``p``)."""
        for seat in self.seats.values():
            if seat is not addressee:
                seat.overhear(p.name, text, p.id)

    def _names_changed(self) -> None:
        """Everyone's names, as they are now: the speech recognition is told them, and each character knows who
        else is here (a reply that reads out one of their lines is left unsaid)."""
        people = [p.name for p in self.participants.values()] if self.stamped else []
        self.vocabulary = vocabulary((s.character for s in self.seats.values()), people)
        for seat in self.seats.values():
            seat.manager.hear_others([*people, *(s.character.name for s in self.seats.values() if s is not seat)])

    def _with_carried(self, player: str, text: str) -> str:
        carried = (seat.carried(player) for seat in self.seats.values())
        return " ".join([*(c for c in carried if c), text]).strip()

    def _all_quiet(self) -> bool:
        return all(seat.quiet for seat in self.seats.values())

    def _sync_activity(self) -> None:
        """Tell the server whether this room is active: someone speaks, or a reply to someone is under way
        (a greeting is not: it needs no model, and the character's prompt is computed meanwhile)."""
        active = any(p.speaking for p in self.participants.values()) or any(s.active for s in self.seats.values())
        self._s.activity.set(self, active)


def _sentence(fact: str) -> str:
    """A fact as a sentence of the prompt's "Right now:" ("It is night" -> "It is night.")."""
    return fact if fact[-1:] in ".!?…" else f"{fact}."
