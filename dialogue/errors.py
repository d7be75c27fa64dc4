"""Errors raised by dialogue/.

    DialogueError
    ├── ContentError           a content file is invalid (has .path and .field)
    │   ├── CharacterError     ... a character file
    │   │   └── CharacterNotFoundError  no character has the requested id
    │   ├── RoomError          ... a room file
    │   └── QuestError, SceneError, StoryError (dialogue.kinds)   ... a generated content file
    ├── GenerationError        no valid content after every attempt (dialogue.generate)
    └── BackendError           an LLM backend failed (has .retryable)
        └── BackendUnavailableError  the backend's optional package is not installed

Invalid world actions are not errors: they are dropped and logged with the reason.
Every message says what to do next.
"""

from __future__ import annotations

from pathlib import Path


class DialogueError(Exception):
    """Root of dialogue/'s errors."""


class ContentError(DialogueError):
    what = "content"

    def __init__(self, path: Path | None, field: str, message: str) -> None:
        where = f"{path}" if path is not None else self.what
        at = f" (field {field})" if field else ""
        super().__init__(f"{where}{at}: {message}")
        self.path = path
        self.field = field


class CharacterError(ContentError):
    what = "character"


class RoomError(ContentError):
    what = "room"


class CharacterNotFoundError(CharacterError):
    pass


class BackendError(DialogueError):
    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class BackendUnavailableError(BackendError):
    pass


class BackendPreemptedError(BackendError):
    """A background generation (``background=True``) gave the model up to a conversation turn; try later."""
