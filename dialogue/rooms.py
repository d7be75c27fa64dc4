"""Room files: a voice space where players meet one or more characters (TOML or JSON)::

    id = "tavern"                       # optional: the file's stem
    name = "The Sleeping Fox"
    characters = ["innkeeper", "blacksmith"]
    scenario = "The common room of the inn, on a rainy evening."   # optional: told to every character
    facts = ["The fire is lit.", "Rain drums on the shutters."]   # optional: the world's current state
    scene = "tavern"                    # optional: the scene file (dialogue.kinds) it is opened on

A room names its characters by id; whether they exist is checked where the characters are known
(``check_characters``), so the error names the room file and the missing id.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialogue.content import invalid, read_content
from dialogue.errors import RoomError
from dialogue.types import RoomSpec

SUFFIXES = (".toml", ".json")
_ID = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


class _RoomModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(None, pattern=_ID)
    name: str = Field(min_length=1, max_length=80)
    characters: list[str] = Field(min_length=1, max_length=8)
    scenario: str = Field("", max_length=2000)
    facts: list[str] = Field(default_factory=list, max_length=32)
    scene: str | None = Field(None, pattern=_ID)


def load_room(path: Path) -> RoomSpec:
    """Read one room file; RoomError names the file and the field when it is invalid."""
    data = read_content(path, RoomError)
    try:
        model = _RoomModel.model_validate(data)
    except ValidationError as exc:
        raise invalid(path, exc, RoomError) from None
    room_id = model.id or path.stem.lower()
    if not re.match(_ID, room_id):
        raise RoomError(path, "id", f"{room_id!r} is not a valid id: use a-z, 0-9, _ and -")
    for i, character in enumerate(model.characters):
        if not re.match(_ID, character):
            raise RoomError(path, f"characters.{i}", f"{character!r} is not a character id")
    if len(set(model.characters)) != len(model.characters):
        raise RoomError(path, "characters", "a character is listed twice")
    return RoomSpec(
        id=room_id,
        name=model.name.strip(),
        characters=tuple(model.characters),
        scenario=model.scenario.strip(),
        facts=tuple(f.strip() for f in model.facts if f.strip()),
        source=path,
        scene=model.scene,
    )


def scan_rooms(*directories: Path) -> tuple[dict[str, RoomSpec], list[RoomError]]:
    """Every room file in ``directories`` (sorted by id; a later directory's room replaces an earlier one's of
    the same id), and the errors of the invalid ones. A directory that does not exist holds no rooms."""
    found: dict[str, RoomSpec] = {}
    errors: list[RoomError] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        here: dict[str, RoomSpec] = {}
        for path in sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file()):
            try:
                room = load_room(path)
            except RoomError as exc:
                errors.append(exc)
                continue
            if room.id in here:
                errors.append(RoomError(path, "id", f"id {room.id!r} is already used by {here[room.id].source}"))
                continue
            here[room.id] = room
        found.update(here)
    return dict(sorted(found.items())), errors


def check_characters(room: RoomSpec, known: Collection[str]) -> None:
    """RoomError naming the room's file when it lists a character that is not among ``known``."""
    missing = [c for c in room.characters if c not in known]
    if missing:
        raise RoomError(
            room.source,
            "characters",
            f"no character {', '.join(map(repr, missing))} (known: {', '.join(sorted(known)) or 'none'})",
        )
