"""The wire messages of a room, made in one place: stamped with their speaker and character in a room, and in
the 1:1 shape (no stamps, no ``addressed`` or ``room`` events) when the room is a 1:1 conversation."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from llmasos.addressing import Addressed
from llmasos.participant import Participant
from rtc.protocol import AddressedMessage, RoomMessage, TranscriptMessage
from rtc.protocol import Participant as ParticipantInfo

_STAMPED = ("state", "reply", "words", "viseme", "action", "interrupted", "metrics", "error")  # a character's messages


class Wire:
    def __init__(self, participants: Mapping[str, Participant], *, stamped: bool) -> None:
        self._participants = participants  # the room's, as they come and go
        self.stamped = stamped

    def send(self, message: BaseModel) -> None:
        """To everyone in the room."""
        for p in list(self._participants.values()):
            p.send(message)

    def from_character(self, character: str, message: BaseModel) -> None:
        """A character's message, to everyone: in a room, it says whose."""
        if self.stamped and getattr(message, "type", "") in _STAMPED:
            message = message.model_copy(update={"character": character})
        self.send(message)

    def transcript(self, p: Participant, text: str, *, final: bool, turn: int | None = None) -> None:
        """What ``p`` said: in a room everyone sees it, with who said it; 1:1, the speaker alone."""
        if self.stamped:
            self.send(TranscriptMessage(text=text, final=final, turn=turn, speaker=p.id, name=p.name))
        else:
            p.send(TranscriptMessage(text=text, final=final, turn=turn))

    def addressed(self, decision: Addressed, turn: int | None) -> None:
        if self.stamped:
            self.send(
                AddressedMessage(
                    speaker=decision.speaker, character=decision.character, reason=decision.reason, turn=turn
                )
            )

    def announce(self, joined: bool, player: str, characters: list[str]) -> None:
        """``player`` joined or left: everyone here is told who is in the room now."""
        if not self.stamped:
            return
        everyone = [ParticipantInfo(id=p.id, name=p.name) for p in self._participants.values()]
        event = "joined" if joined else "left"
        self.send(RoomMessage(event=event, participant=player, participants=everyone, characters=characters))
