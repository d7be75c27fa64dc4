"""Who has the floor in a room: a pure policy (events in, decisions out), unit-tested on scripted timelines.

- One character speaks at a time. A reply that is ready asks for the floor (``want``); it is granted at once
  when nobody speaks, else it waits, first come first served.
- A character never starts while someone else is mid-utterance: it waits for the gap (``speech_ended`` of the
  last person speaking grants the next waiting reply). The person it answers is not waited for: their speech
  stops a reply that is speaking (barge-in) and carries over one that is not.
- Speech of the person a character is answering interrupts it at once (barge-in: ``speech_started``); with
  ``pause_first`` its voice already holds at the first sound of it (``onset``), before it is known to be
  speech (the room plays it on if it was not: a click, a cough); speech
  addressed to it by someone else interrupts it when that utterance is known to be for it (``addressed``).
  Other people chatting does not.

Decisions are returned, not performed: ``Grant(character, player)`` (start speaking now),
``Stop(character, reason)`` (cancel the reply now: "barge_in" or "addressed") and, with ``pause_first``,
``Pause(character)`` instead of a barge-in's Stop: the voice stops at once, and the words that began decide
(a backchannel or nothing resumes it, anything else stops it; the room knows the words, the floor does not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from llmasos.addressing import Addressed


@dataclass(frozen=True)
class Grant:
    character: str
    player: str | None  # whom it answers (None: a greeting, a line to the room)


@dataclass(frozen=True)
class Stop:
    character: str
    reason: Literal["barge_in", "addressed"]


@dataclass(frozen=True)
class Pause:
    character: str  # its voice stops now and keeps its place: the speech that began may be only "uh-huh"


Decision = Grant | Stop | Pause


@dataclass
class Floor:
    speaking: Grant | None = None  # the character speaking now, and whom it answers
    waiting: list[Grant] = field(default_factory=list)  # ready replies, in the order they asked
    in_speech: set[str] = field(default_factory=set)  # the people mid-utterance
    pause_first: bool = False  # the answered person's speech pauses the reply (Pause) instead of stopping it

    def want(self, character: str, player: str | None) -> list[Decision]:
        """A reply of ``character`` (to ``player``) is ready to speak: granted now, or when the floor is free.
        A character asks once: a newer reply replaces its waiting one; a character that has the floor keeps it
        for its next reply (its previous one is ending)."""
        self.waiting = [w for w in self.waiting if w.character != character]
        if self.speaking is not None and self.speaking.character == character:
            self.speaking = Grant(character, player)
            return [self.speaking]
        self.waiting.append(Grant(character, player))
        return self._next()

    def withdraw(self, character: str) -> list[Decision]:
        """``character``'s reply ended (done, cancelled or failed) or was dropped before it spoke."""
        self.waiting = [w for w in self.waiting if w.character != character]
        if self.speaking is not None and self.speaking.character == character:
            self.speaking = None
        return self._next()

    def speech_started(self, person: str) -> list[Decision]:
        self.in_speech.add(person)
        if self.speaking is not None and self.speaking.player == person:
            character = self.speaking.character
            return [Pause(character) if self.pause_first else Stop(character, "barge_in")]
        return []

    def onset(self, person: str) -> list[Decision]:
        """The first sound of what may be ``person``'s speech: with ``pause_first``, a reply to them holds."""
        if self.pause_first and self.speaking is not None and self.speaking.player == person:
            return [Pause(self.speaking.character)]
        return []

    def speech_ended(self, person: str) -> list[Decision]:
        self.in_speech.discard(person)
        return self._next()

    def addressed(self, decision: Addressed) -> list[Decision]:
        """A final utterance was found to be for ``decision.character``: if that character is speaking to
        someone else, it stops for the new speaker (who gets the floor through the reply it starts)."""
        speaking = self.speaking
        if speaking is not None and decision.character == speaking.character and decision.speaker != speaking.player:
            return [Stop(speaking.character, "addressed")]
        return []

    def _next(self) -> list[Decision]:
        if self.speaking is not None or not self.waiting:
            return []
        if self.in_speech - {self.waiting[0].player}:
            return []  # someone else is mid-utterance
        self.speaking = self.waiting.pop(0)
        return [self.speaking]
