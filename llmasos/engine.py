"""The loaded, shared components of a server process, and how a new conversation is composed from them.

``load_engine`` verifies and loads every model once (blocking, with progress lines: run it in a thread);
``Engine.conversation`` opens a session's state (listener, dialogue manager) over the shared models.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dialogue import Backend, Character, CharacterError, RoomError, RoomSpec, check_characters, scan_rooms
from dialogue.manager import DialogueManager
from llmasos.activity import Activity
from llmasos.content import library, scan_characters
from llmasos.conversation import Conversation, ConversationOptions, Observer, Services, Transport
from llmasos.dialogue_factory import (
    PACKAGED_ROOMS,
    backend_name,
    build_backend,
    build_manager,
    characters_dir,
    summariser,
)
from llmasos.errors import ConfigError
from llmasos.memory_factory import open_memory, open_reflector
from llmasos.models import ModelStore
from llmasos.room import Room
from llmasos.settings import Settings
from llmasos.voice_factory import (
    character_voices,
    endpoint_options,
    known_voices,
    load_asr,
    load_tts,
    load_turn,
    load_vad,
    open_listener,
    voice_known,
)
from memory import ChromaMemoryStore, Reflector
from rtc.mixer import RoomMixer
from voice.asr import WhisperASR
from voice.echo import EchoOptions
from voice.smart_turn import SmartTurn
from voice.tts import PiperTTS
from voice.vad import SileroVAD

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class Engine:
    settings: Settings
    vad: SileroVAD
    asr: WhisperASR
    tts: PiperTTS
    backend: Backend
    memory: ChromaMemoryStore
    characters: dict[str, Character]
    reflector: Reflector | None = None
    voices: dict[str, PiperTTS] = dataclasses.field(default_factory=dict)  # by character id; else ``tts``
    rooms: dict[str, RoomSpec] = dataclasses.field(default_factory=dict)
    turn: SmartTurn | None = None  # the end-of-turn model; None: silence alone ends a turn
    activity: Activity = dataclasses.field(default_factory=Activity)  # whether any session is active

    def services(self, observer: Observer | None = None, character: Character | None = None) -> Services:
        services = Services(
            open_listener=lambda: open_listener(self.settings, self.vad, self.asr, self.turn),
            tts=self.voices.get(character.id, self.tts) if character is not None else self.tts,
            memory=self.memory,
            reflect=self.reflector.observe if self.reflector is not None else None,
            activity=self.activity,
        )
        return services if observer is None else dataclasses.replace(services, observer=observer)

    def conversation_options(self) -> ConversationOptions:
        m = self.settings.memory
        return ConversationOptions(
            endpoint=endpoint_options(self.settings),
            recall_k=m.top_k,
            recall_budget_s=m.recall_budget_ms / 1000,
            llm_timeout_s=self.settings.llm.timeout_s,
            memory_writes_per_min=self.settings.limits.memory_writes_per_min,
            preemptive=self.settings.endpoint.preemptive and self.settings.asr.speculative,
            echo=EchoOptions() if self.settings.endpoint.echo_gate else None,
            backchannels=tuple(self.settings.endpoint.backchannels) if self.settings.endpoint.pause_on_speech else (),
        )

    def character(self, character_id: str) -> Character | None:
        return self.characters.get(character_id)

    def reload_content(self) -> None:
        """Read the characters and rooms again (new content was saved): new sessions see it at once; open ones
        keep the characters they have."""
        quiet = lambda line: None  # noqa: E731 (the errors are logged)
        characters = load_characters(self.settings, quiet)
        self.rooms = load_rooms(self.settings, characters, quiet)
        self.characters = characters

    def conversation(
        self,
        transport: Transport,
        character: Character,
        player: str,
        observer: Observer | None = None,
        *,
        greet: bool = True,
        manager: DialogueManager | None = None,
    ) -> Conversation:
        """A 1:1 conversation; ``manager``: one that goes on (a resumed session's), else a new one."""
        manager = manager or build_manager(self.settings, self.backend, character)
        services = self.services(observer, character)
        options = dataclasses.replace(self.conversation_options(), greet=greet)
        return Conversation(services, transport, manager, player, options)

    def room(self, spec: RoomSpec, observer: Observer | None = None) -> Room:
        """A room opened on ``spec``: its characters, each with its own voice in the room's mix, told the
        room's scenario and facts and who else is there."""
        options = dataclasses.replace(self.conversation_options(), greet=True)
        present = [self.characters[c] for c in spec.characters]
        # the speech recognition is told the names people will say, the characters' and the people's in the room
        # as they come and go (measured: `bench room`, addressing)
        asr = self.asr.with_prompt(lambda: room.vocabulary)
        services = dataclasses.replace(
            self.services(observer), open_listener=lambda: open_listener(self.settings, self.vad, asr, self.turn)
        )
        room = Room(services, options, room_id=spec.id, mixer=RoomMixer())
        for character in present:
            others = [f"{o.name} ({o.role})" if o.role else o.name for o in present if o is not character]
            scene = " ".join(
                part
                for part in (
                    spec.scenario,
                    " ".join(spec.facts),
                    f"Also here: {', '.join(others)}." if others else "",
                    "Several people may talk to you; each line says who speaks.",
                )
                if part
            )
            local = dataclasses.replace(character, scenario=scene or character.scenario)
            manager = build_manager(self.settings, self.backend, local)
            room.add_character(manager, self.voices.get(character.id, self.tts))
        return room

    async def aclose(self) -> None:
        """Close everything, off the event loop (stopping the LLM worker waits for its process)."""
        if self.reflector is not None:
            await self.reflector.aclose()
        await self.memory.close()
        await asyncio.to_thread(self._close_models)

    def _close_models(self) -> None:
        for voice in {id(v.origin): v.origin for v in (self.tts, *self.voices.values())}.values():
            voice.close()
        self.asr.close()
        if self.backend.engine is not None:
            self.backend.engine.close()

    def health(self) -> dict[str, Any]:
        """The LLM engine's process, for /healthz: state, pid, restarts (none when it runs in-process)."""
        if self.backend.engine is None:
            return {"backend": self.backend.name, "state": "in_process"}
        return {"backend": self.backend.name, **self.backend.engine.status()}


def load_engine(settings: Settings, progress: Progress = print) -> Engine:
    """Verify and load everything once. Blocking; raises LLMasOSError/ModelError with a clear message."""
    store = ModelStore(settings.data_dir)
    steps: dict[str, Any] = {}

    def step(name: str, load: Callable[[], Any]) -> Any:
        progress(f"loading {name} ...")
        t0 = time.perf_counter()
        steps[name] = value = load()
        progress(f"loaded {name} in {time.perf_counter() - t0:.1f} s")
        return value

    found = load_characters(settings, progress)
    rooms = load_rooms(settings, found, progress)
    vad = step("VAD (Silero)", lambda: load_vad(settings, store))
    turn = None
    if settings.endpoint.end_of_turn == "smart_turn":
        turn = step("end of turn (Smart Turn)", lambda: load_turn(settings, store))
    asr = step(f"ASR (Whisper {settings.asr.model})", lambda: load_asr(settings, store))
    tts = step("TTS (Piper)", lambda: load_tts(settings, store))
    voices = character_voices(settings, store, found.values(), {settings.tts.voice: tts})
    backend = step(f"LLM ({backend_name(settings)})", lambda: build_backend(settings))
    memory = step("memory (ChromaDB + embeddings)", lambda: open_memory(settings))
    progress("warming up ...")
    t0 = time.perf_counter()
    asr.transcribe_sync(np.zeros(16000, dtype=np.float32), final=True)
    tts.synthesize_sync("Ready.")
    if turn is not None:
        turn.predict(np.zeros(16000, dtype=np.float32))
    progress(f"warm in {time.perf_counter() - t0:.1f} s")
    activity = Activity()
    reflector = open_reflector(settings, memory, summariser(backend, activity))
    return Engine(settings, vad, asr, tts, backend, memory, found, reflector, voices, rooms, turn, activity)


def load_characters(settings: Settings, progress: Progress = print) -> dict[str, Character]:
    """The valid characters; each invalid file (a voice that does not exist included: it is the file's error,
    never a silent default) is skipped with a line that names it. ConfigError when none is valid."""
    found, errors = scan_characters(settings)
    for character in list(found.values()):
        if not voice_known(settings, character.voice.name):
            del found[character.id]
            unknown = f"unknown voice {character.voice.name!r}; {known_voices(settings)}"
            errors.append(CharacterError(character.source, "voice", unknown))
    for error in errors:
        log.error("invalid character file", extra={"reason": str(error)})
        progress(f"skipped: {error}")
    if not found:
        raise ConfigError(f"no valid character in {characters_dir(settings)}")
    progress(f"characters: {', '.join(found)}")
    return found


def load_rooms(settings: Settings, characters: dict[str, Character], progress: Progress = print) -> dict[str, RoomSpec]:
    """The shipped rooms and those of ``rooms_dir``; a room whose characters are not all here is skipped with a
    line that names its file (quietly for a shipped room when the characters are the user's own)."""
    generated = library(settings).dir("room")
    rooms, errors = scan_rooms(PACKAGED_ROOMS, *([settings.rooms_dir] if settings.rooms_dir else []), generated)
    for room in list(rooms.values()):
        try:
            check_characters(room, characters)
        except RoomError as exc:
            del rooms[room.id]
            if room.source is not None and room.source.parent == PACKAGED_ROOMS and settings.characters_dir:
                log.info("shipped room skipped: its characters are not in characters_dir", extra={"room": room.id})
                continue
            errors.append(exc)
    for error in errors:
        log.error("invalid room file", extra={"reason": str(error)})
        progress(f"skipped: {error}")
    if rooms:
        progress(f"rooms: {', '.join(rooms)}")
    return rooms
