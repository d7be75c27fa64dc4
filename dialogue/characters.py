"""Character files: TOML or JSON in our format, or a community Character Card V2 (``"spec": "chara_card_v2"``).

Our format (TOML shown; JSON has the same shape)::

    id = "blacksmith"            # optional: the file's stem
    name = "Brom"
    persona = "A gruff village blacksmith..."
    greeting = "Well met!"
    voice = "joe"                # or { name = "joe", rate = 0.95, pitch = 0.9 }: its own pace and pitch
    role = "blacksmith"          # optional: players may address it by role as well as by name
    aliases = ["Smith"]          # optional: more names it answers to
    knowledge = ["The forge is by the river."]
    fallback = "Hm. Can't help you there."   # optional: said when the model has nothing to say

    [actions.wave]
    description = "Wave at someone."
    args.target = { type = "string", description = "who to wave at" }

    [actions.emote]
    args.emotion = { type = "enum", values = ["happy", "sad"] }

A card maps name, description + personality (persona), scenario, first_mes (greeting) and mes_example
(examples); ``{{char}}``/``{{user}}`` become the character's name and "the player". World actions (and a
fallback line) of a card can be declared under ``data.extensions.llmasos`` in our format.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dialogue.content import invalid, read_content
from dialogue.errors import CharacterError, CharacterNotFoundError
from dialogue.types import ActionParam, ActionSpec, Character, VoiceChoice

SUFFIXES = (".toml", ".json")
_ID = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
_IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_VOICE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"  # a voice name: never a path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionArg(_Strict):
    type: Literal["string", "integer", "number", "boolean", "enum"] = "string"
    description: str = Field("", max_length=200)
    required: bool = True
    values: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _enum_values(self) -> ActionArg:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum argument needs a non-empty `values` list")
        if self.type != "enum" and self.values:
            raise ValueError("`values` is only for arguments of type enum")
        return self


class ActionDecl(_Strict):
    description: str = Field("", max_length=200)
    args: dict[str, ActionArg] = Field(default_factory=dict, max_length=8)


class Voice(_Strict):
    name: str = Field("joe", pattern=_VOICE)
    rate: float = Field(1.0, ge=0.5, le=2.0)  # speaking rate: > 1 faster
    pitch: float = Field(1.0, ge=0.7, le=1.4)  # pitch: > 1 higher


class CharacterFile(_Strict):
    """A character file, as written (the published character schema: docs/content/character.schema.json)."""

    id: str | None = Field(None, pattern=_ID)
    name: str = Field(min_length=1, max_length=80)
    persona: str = Field(min_length=1, max_length=4000)
    greeting: str = Field("", max_length=400)
    voice: Voice | Annotated[str, Field(max_length=64)] = "joe"
    role: str = Field("", max_length=80)
    aliases: list[Annotated[str, Field(max_length=80)]] = Field(default_factory=list, max_length=16)
    scenario: str = Field("", max_length=2000)
    examples: str = Field("", max_length=4000)
    knowledge: list[Annotated[str, Field(max_length=600)]] = Field(default_factory=list, max_length=64)
    actions: dict[str, ActionDecl] = Field(default_factory=dict, max_length=32)
    fallback: str = Field("", max_length=200)


def load_character(path: Path) -> Character:
    """Read one character file; CharacterError names the file and the field when it is invalid."""
    data = read_content(path, CharacterError)
    if isinstance(data, dict) and "spec" in data:
        return _from_card(path, data)
    return _build(path, data, default_id=path.stem)


def scan(directory: Path) -> tuple[dict[str, Character], list[CharacterError]]:
    """Every character file in ``directory`` (sorted by id), and the errors of the invalid ones."""
    found: dict[str, Character] = {}
    errors: list[CharacterError] = []
    if not directory.is_dir():
        return found, [CharacterError(directory, "", "the characters directory does not exist")]
    for path in sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file()):
        try:
            character = load_character(path)
        except CharacterError as exc:
            errors.append(exc)
            continue
        if character.id in found:
            other = found[character.id].source
            errors.append(CharacterError(path, "id", f"id {character.id!r} is already used by {other}"))
            continue
        found[character.id] = character
    return dict(sorted(found.items())), errors


def find(directory: Path, character_id: str) -> Character:
    """The character with this id; CharacterNotFoundError lists the ids there are."""
    if not re.match(_ID, character_id):  # ids come from clients: never let one name a path
        raise CharacterNotFoundError(directory, "id", f"{character_id!r} is not a character id (a-z, 0-9, _ and -)")
    for suffix in SUFFIXES:
        path = directory / f"{character_id}{suffix}"
        if path.is_file():
            character = load_character(path)
            if character.id == character_id:
                return character
    found, _ = scan(directory)
    if character_id in found:
        return found[character_id]
    known = ", ".join(found) or "none"
    raise CharacterNotFoundError(directory, "id", f"no character {character_id!r} (known: {known})")


def _build(path: Path, data: Any, *, default_id: str, prefix: str = "") -> Character:
    try:
        model = CharacterFile.model_validate(data)
    except ValidationError as exc:
        raise invalid(path, exc, CharacterError, prefix) from None
    character_id = model.id or default_id.lower()
    if not re.match(_ID, character_id):
        raise CharacterError(path, prefix + "id", f"{character_id!r} is not a valid id: use a-z, 0-9, _ and -")
    actions = []
    for name, action in model.actions.items():
        if not re.match(_IDENT, name):
            raise CharacterError(path, f"{prefix}actions.{name}", "an action name is a letter then letters/digits/_")
        params = []
        for arg, p in action.args.items():
            if not re.match(_IDENT, arg):
                raise CharacterError(path, f"{prefix}actions.{name}.args.{arg}", "not a valid argument name")
            params.append(ActionParam(arg, p.type, p.description, p.required, tuple(p.values)))
        actions.append(ActionSpec(name, action.description, tuple(params)))
    voice = model.voice if isinstance(model.voice, Voice) else _voice_named(path, prefix, model.voice)
    return Character(
        id=character_id,
        name=model.name,
        persona=model.persona.strip(),
        greeting=model.greeting.strip(),
        voice=VoiceChoice(voice.name, voice.rate, voice.pitch),
        scenario=model.scenario.strip(),
        examples=model.examples.strip(),
        knowledge=tuple(k.strip() for k in model.knowledge if k.strip()),
        actions=tuple(actions),
        source=path,
        fallback=model.fallback.strip(),
        role=model.role.strip(),
        aliases=tuple(a.strip() for a in model.aliases if a.strip()),
    )


def _voice_named(path: Path, prefix: str, name: str) -> Voice:
    try:
        return Voice(name=name)
    except ValidationError:
        raise CharacterError(path, prefix + "voice", f"{name!r} is not a voice name (letters, digits, _ . -)") from None


def _from_card(path: Path, card: dict[str, Any]) -> Character:
    if card.get("spec") != "chara_card_v2":
        raise CharacterError(path, "spec", f"unsupported card spec {card.get('spec')!r}; expected 'chara_card_v2'")
    data = card.get("data")
    if not isinstance(data, dict):
        raise CharacterError(path, "data", "a Character Card V2 needs a `data` object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CharacterError(path, "data.name", "a non-empty name is required")
    for key in ("description", "personality", "scenario", "first_mes", "mes_example"):
        if not isinstance(data.get(key, ""), str):
            raise CharacterError(path, f"data.{key}", "must be a string")

    def sub(text: str) -> str:
        return text.replace("{{char}}", name).replace("{{user}}", "the player").strip()

    persona = "\n".join(p for p in (sub(data.get("description", "")), sub(data.get("personality", ""))) if p)
    ours: dict[str, Any] = {
        "name": name.strip(),
        "persona": persona or f"{name} is a character in this world.",
        "greeting": sub(data.get("first_mes", "")),
        "scenario": sub(data.get("scenario", "")),
        "examples": sub(data.get("mes_example", "")),
    }
    extensions = data.get("extensions")
    if isinstance(extensions, dict) and isinstance(extensions.get("llmasos"), dict):
        ours.update(extensions["llmasos"])
    return _build(path, ours, default_id=path.stem, prefix="data.")
