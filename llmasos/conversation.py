"""A voice conversation: one player, one character, one transport. It is a room of one of each
(llmasos/room.py), with the 1:1 wire (no speaker or character stamps, no `addressed` or `room` events).

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

from dialogue.manager import DialogueManager
from llmasos.participant import ListenStage, Transport
from llmasos.room import DEFAULT_OPTIONS, Room
from llmasos.seat import WARM_TASK
from llmasos.services import ConversationOptions, Observer, Services

__all__ = ["WARM_TASK", "Conversation", "ConversationOptions", "ListenStage", "Observer", "Services", "Transport"]


class Conversation:
    def __init__(
        self,
        services: Services,
        transport: Transport,
        manager: DialogueManager,
        player: str,
        options: ConversationOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.services = services  # what it runs on (shared with other sessions)
        self.manager = manager  # the character's side of this conversation: its history
        self._t = transport
        self._player = player
        self.room = Room(services, options)
        self.room.add_character(manager, services.tts, transport.speaker)

    @property
    def transcripts(self) -> list[str]:
        """Final transcripts of this session, in order."""
        return self.room.transcripts.get(self._player, [])

    async def run(self) -> None:
        """Until the transport closes. Every turn is finalised (heard text stored) before this returns."""
        await self.room.join(self._player, self._player, self._t)
