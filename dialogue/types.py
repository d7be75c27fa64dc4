"""The dialogue contract: characters, their world actions, the reply events, and the backend protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from langchain_core.language_models import BaseChatModel

ParamType = Literal["string", "integer", "number", "boolean", "enum"]
ArgValue = str | int | float | bool


@dataclass(frozen=True)
class ActionParam:
    name: str
    type: ParamType
    description: str = ""
    required: bool = True
    choices: tuple[str, ...] = ()  # the allowed values of an enum


@dataclass(frozen=True)
class ActionSpec:
    """A world action a character may perform, e.g. ``give_item(item, target)``."""

    name: str
    description: str = ""
    params: tuple[ActionParam, ...] = ()

    def param(self, name: str) -> ActionParam | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class VoiceChoice:
    """How a character sounds: a voice by name (the packaged one, or a user's file in ``tts.voices_dir``) and its
    own speaking rate and pitch (factors: > 1 faster / higher), so two characters in one room are told apart."""

    name: str = "joe"
    rate: float = 1.0
    pitch: float = 1.0


@dataclass(frozen=True)
class Character:
    id: str
    name: str
    persona: str
    greeting: str = ""
    voice: VoiceChoice = VoiceChoice()
    scenario: str = ""
    examples: str = ""  # sample dialogue
    knowledge: tuple[str, ...] = ()  # facts the character knows about its world
    actions: tuple[ActionSpec, ...] = ()
    source: Path | None = None  # the file it was read from
    fallback: str = ""  # said when the model has nothing to say (ManagerOptions.fallback when empty)
    role: str = ""  # what people call it besides its name ("blacksmith"): a room's players address it by either
    aliases: tuple[str, ...] = ()  # more names it answers to ("Captain", "Smith")

    def action(self, name: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.name == name), None)


@dataclass(frozen=True)
class RoomSpec:
    """A voice space where players meet characters (a room file). A 1:1 session is a room of one character."""

    id: str
    name: str
    characters: tuple[str, ...]  # character ids, in the order the room lists them
    scenario: str = ""  # told to every character of the room
    facts: tuple[str, ...] = ()  # the world's current state, as the room starts
    source: Path | None = None
    scene: str | None = None  # the scene it is opened on (a scene file's id): what the 3D client shows


@dataclass(frozen=True)
class ReplySentence:
    """A piece of the reply ready for speech: a sentence, or a clause when it is long enough to start early."""

    text: str
    start_char: int  # offset of its first character in the spoken reply text


@dataclass(frozen=True)
class ReplyAction:
    """A declared world action with valid arguments, at its place in the spoken reply text."""

    name: str
    args: Mapping[str, ArgValue]
    at_char: int


# how a reply that had nothing to say aloud was mended: "retried" (the model, asked again, answered),
# "fallback" (it had nothing again: the character's fallback line was said); "" when nothing needed mending
Recovery = Literal["", "retried", "fallback"]


@dataclass(frozen=True)
class ReplyDone:
    full_text: str  # the whole spoken reply (action markup and scaffolding removed)
    dropped: int = 0  # how many invalid actions were dropped (each logged with its reason)
    recovery: Recovery = ""
    echoes: int = 0  # how many pieces of the prompt's own scaffolding the model read back (left unsaid)


ReplyEvent = ReplySentence | ReplyAction | ReplyDone


@dataclass(frozen=True)
class HistoryEntry:
    # "player": words the character answered; "character": what it said (as heard); "room": what it overheard
    # in a room (someone else's words, another character's reply), with the speaker's name ("Ann: ...")
    role: Literal["player", "character", "room"]
    text: str


class EngineProcess(Protocol):
    """The process that runs a backend's model, when it runs one (llama.cpp's supervised worker)."""

    def status(self) -> dict[str, Any]:
        """At least ``state`` ("starting", "ready", "restarting", "failed", "stopped"), ``pid``, ``restarts``."""
        ...

    def close(self) -> None:
        """Stop it (blocking)."""
        ...


@dataclass(frozen=True)
class Backend:
    """An LLM backend: a LangChain chat model and how it can express world actions."""

    name: str  # "transformers", "openai", "llamacpp", "fake", ...
    model: BaseChatModel
    native_tools: bool = False  # True: actions as tool calls; False: inline action markup in the text
    # the engine keeps computed prompts (llama.cpp): computing the next prompt's prefix ahead, while the player
    # listens, makes the next reply start sooner (DialogueManager.warm)
    prefix_cache: bool = False
    options: Mapping[str, str] = field(default_factory=dict)  # description for logs and benchmarks
    engine: EngineProcess | None = None  # the model's own process, if it has one (health, shutdown)
    # a call's ``json_schema`` keyword makes the output valid JSON of that schema by construction (llama.cpp's
    # grammar, an OpenAI-compatible server's response_format); False: the keyword is ignored
    structured_output: bool = False
