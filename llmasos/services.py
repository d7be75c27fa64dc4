"""What a room (or a 1:1 conversation) is built from: the shared, loaded components and the options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from llmasos.activity import Activity
from llmasos.participant import ListenStage
from memory.types import MemoryStore
from voice.echo import EchoOptions
from voice.endpoint import EndpointOptions
from voice.types import TTS


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
    """The shared, loaded components, and how to open one participant's listening stage over them."""

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
    echo: EchoOptions | None = EchoOptions()  # the character's voice coming back is taken out (None: off)
    # said over a reply to the one who says it, these pause it and it goes on ("uh-huh", e.g. BACKCHANNELS);
    # empty: any speech of theirs stops the reply at once (a server fills it from endpoint.pause_on_speech)
    backchannels: tuple[str, ...] = ()
    recall_k: int = 4
    recall_budget_s: float = 0.15
    greet: bool = True
    memory_writes_per_min: int = 60
    llm_timeout_s: float = 20.0  # the longest wait for the model's next piece of a reply
    preemptive: bool = True  # start the reply from a tentative transcript, held until the turn really ends
    apology: str = "Sorry, I lost my train of thought. Could you say that again?"
