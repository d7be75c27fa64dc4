"""dialogue/: characters, world-action schema, LLM backends, the LangChain dialogue manager.

Imports nothing of llmasos, voice, memory or rtc. The contract is in dialogue.types.
"""

from dialogue.characters import find, load_character, scan
from dialogue.errors import (
    BackendError,
    BackendUnavailableError,
    CharacterError,
    CharacterNotFoundError,
    ContentError,
    DialogueError,
    RoomError,
)
from dialogue.manager import DialogueManager, ManagerOptions
from dialogue.rooms import check_characters, load_room, scan_rooms
from dialogue.splitter import SplitterOptions
from dialogue.types import (
    ActionParam,
    ActionSpec,
    Backend,
    Character,
    HistoryEntry,
    ReplyAction,
    ReplyDone,
    ReplyEvent,
    ReplySentence,
    RoomSpec,
    VoiceChoice,
)

__all__ = [
    "ActionParam",
    "ActionSpec",
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Character",
    "CharacterError",
    "CharacterNotFoundError",
    "DialogueError",
    "DialogueManager",
    "HistoryEntry",
    "ManagerOptions",
    "ReplyAction",
    "ReplyDone",
    "ReplyEvent",
    "ReplySentence",
    "RoomError",
    "RoomSpec",
    "check_characters",
    "load_room",
    "scan_rooms",
    "ContentError",
    "VoiceChoice",
    "SplitterOptions",
    "find",
    "load_character",
    "scan",
]
