"""Content kinds: what a character, quest, scene or story file holds (pydantic models: the source of truth of
the JSON Schemas published in docs/content/), the world-action vocabulary generated characters choose from,
and the checks of what a schema cannot say (ids unique, references that exist).

    character   a character file (dialogue.characters), the same model that reads one
    quest       id, title, giver (a character id), summary, ordered objectives (talk_to a character, go_to a
                place, bring an item), rewards, and the giver's lines; attached to its giver (``attach``)
    scene       id, name, description, named places with positions, props at places, characters (by id or
                inline) at places, ambient events
    story       a short branching story: nodes with text and choices, from a start node to at least one ending

``problems(kind, content, known)`` lists, for a valid object, what refers to nothing or contradicts itself;
an empty list is a usable object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dialogue.characters import CharacterFile
from dialogue.content import invalid, read_content
from dialogue.errors import ContentError
from dialogue.types import ActionParam, ActionSpec, Character

Kind = Literal["character", "quest", "scene", "story"]
KINDS: tuple[Kind, ...] = ("character", "quest", "scene", "story")

ID = r"^[a-z0-9][a-z0-9_\-]{0,63}$"  # a file's id: what clients send, never a path
NAME = r"^[a-z][a-z0-9_]{0,31}$"  # a place, prop, item or node name: a world-action argument value

Id = Annotated[str, Field(pattern=ID)]
Name = Annotated[str, Field(pattern=NAME)]
Line = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- quest


class TalkTo(_Strict):
    type: Literal["talk_to"] = "talk_to"
    character: Id
    description: str = Field("", max_length=200)


class GoTo(_Strict):
    type: Literal["go_to"] = "go_to"
    place: Name
    description: str = Field("", max_length=200)


class Bring(_Strict):
    type: Literal["bring"] = "bring"
    item: Name
    count: int = Field(1, ge=1, le=99)
    to: Id | None = None  # whom to bring it to; None: the giver
    description: str = Field("", max_length=200)


Objective = Annotated[TalkTo | GoTo | Bring, Field(discriminator="type")]


class Reward(_Strict):
    item: Name  # "silver" is an item like any other
    count: int = Field(1, ge=1, le=9999)


class QuestLines(_Strict):
    offer: Line  # what the giver says to offer it
    accept: Line = "Good. I'm counting on you."
    complete: Line = "Well done. Here is your reward."


class Quest(_Strict):
    id: Id
    title: str = Field(min_length=1, max_length=80)
    giver: Id
    summary: str = Field(min_length=1, max_length=400)
    objectives: list[Objective] = Field(min_length=1, max_length=6)
    rewards: list[Reward] = Field(default_factory=list, max_length=4)
    lines: QuestLines


# ---- scene


class Place(_Strict):
    name: Name
    label: str = Field("", max_length=40)  # what a sign would say; "" : the name
    x: float = Field(0.0, ge=-20, le=20)  # metres; y is up
    z: float = Field(0.0, ge=-20, le=20)


class Prop(_Strict):
    name: Name
    place: Name
    label: str = Field("", max_length=40)


class Cast(_Strict):
    character: Id | CharacterFile  # a character id, or a character written inline (it then needs an ``id``)
    place: Name


class Ambient(_Strict):
    text: str = Field(min_length=1, max_length=160)
    every_s: float = Field(60.0, ge=5, le=3600)


class Scene(_Strict):
    id: Id
    name: str = Field(min_length=1, max_length=80)
    description: str = Field("", max_length=600)
    places: list[Place] = Field(min_length=1, max_length=12)
    props: list[Prop] = Field(default_factory=list, max_length=24)
    characters: list[Cast] = Field(default_factory=list, max_length=6)
    ambient: list[Ambient] = Field(default_factory=list, max_length=8)


# ---- story


class Choice(_Strict):
    text: str = Field(min_length=1, max_length=120)
    next: Name


class StoryNode(_Strict):
    id: Name
    text: str = Field(min_length=1, max_length=600)
    choices: list[Choice] = Field(default_factory=list, max_length=4)  # none: an ending


class Story(_Strict):
    id: Id
    title: str = Field(min_length=1, max_length=80)
    teller: Id | None = None  # the character who tells it
    start: Name
    nodes: list[StoryNode] = Field(min_length=2, max_length=16)


MODELS: dict[Kind, type[BaseModel]] = {"character": CharacterFile, "quest": Quest, "scene": Scene, "story": Story}


class QuestError(ContentError):
    what = "quest"


class SceneError(ContentError):
    what = "scene"


class StoryError(ContentError):
    what = "story"


_ERRORS: dict[str, type[ContentError]] = {"quest": QuestError, "scene": SceneError, "story": StoryError}


def load_content(kind: Literal["quest", "scene", "story"], path: Path) -> BaseModel:
    """One quest, scene or story file (JSON or TOML); its ContentError names the file and the field."""
    error = _ERRORS[kind]
    data = read_content(path, error)
    try:
        return MODELS[kind].model_validate(data)
    except ValidationError as exc:
        raise invalid(path, exc, error) from None


def schema(kind: Kind) -> dict[str, Any]:
    """The published JSON Schema of ``kind`` (docs/content/KIND.schema.json)."""
    body = MODELS[kind].model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": kind, **body}


# ---- the world-action vocabulary of generated characters


def _p(
    name: str, kind: Any = "string", description: str = "", *, required: bool = True, choices: tuple[str, ...] = ()
) -> ActionParam:
    return ActionParam(name, kind, description, required, choices)


EMOTIONS = ("happy", "sad", "angry", "surprised", "thinking", "worried")
VOCABULARY: dict[str, ActionSpec] = {
    a.name: a
    for a in (
        ActionSpec("wave", "Wave at someone.", (_p("target", description="who to wave at, e.g. player"),)),
        ActionSpec("nod", "Nod in agreement."),
        ActionSpec("bow", "Bow politely."),
        ActionSpec("point_at", "Point at someone or something.", (_p("target", description="what to point at"),)),
        ActionSpec("emote", "Show an emotion.", (_p("emotion", "enum", choices=EMOTIONS),)),
        # the arguments below are filled from the character's own items and places (``vocabulary_action``)
        ActionSpec(
            "give_item",
            "Hand an item to someone.",
            (_p("item", "enum"), _p("target", description="who receives it, e.g. player")),
        ),
        ActionSpec("walk_to", "Walk to a place.", (_p("place", "enum"),)),
    )
}  # fmt: skip
QUEST_ACTION = "offer_quest"


def vocabulary_action(name: str, items: Collection[str] = (), places: Collection[str] = ()) -> ActionSpec | None:
    """The vocabulary's action ``name`` with its enum arguments filled (None: no such action, or an item or
    place action with nothing to choose from)."""
    spec = VOCABULARY.get(name)
    if spec is None:
        return None
    params = []
    for p in spec.params:
        if p.type == "enum" and not p.choices:
            values = tuple(items if name == "give_item" else places)
            if not values:
                return None
            p = dataclasses.replace(p, choices=values)
        params.append(p)
    return dataclasses.replace(spec, params=tuple(params))


def action_table(spec: ActionSpec) -> dict[str, Any]:
    """An action as a character file declares it (``[actions.NAME]``)."""
    args: dict[str, Any] = {}
    for p in spec.params:
        arg: dict[str, Any] = {"type": p.type}
        if p.description:
            arg["description"] = p.description
        if not p.required:
            arg["required"] = False
        if p.choices:
            arg["values"] = list(p.choices)
        args[p.name] = arg
    return {"description": spec.description, "args": args} if args else {"description": spec.description}


# ---- what a schema cannot say


@dataclass(frozen=True)
class Known:
    """What generated content may refer to: the characters there are, and the places of the known scenes."""

    characters: Mapping[str, str] = dataclasses.field(default_factory=dict)  # id -> name
    places: tuple[str, ...] = ()
    taken: frozenset[str] = frozenset()  # ids already used by content of the kind being made


def problems(kind: Kind, content: BaseModel, known: Known) -> list[str]:
    """What is wrong with a schema-valid object, one line each (empty: it can be used as it is)."""
    if isinstance(content, Quest):
        return _quest_problems(content, known)
    if isinstance(content, Scene):
        return _scene_problems(content, known)
    if isinstance(content, Story):
        return _story_problems(content, known)
    if isinstance(content, CharacterFile):
        return _character_problems(content, known)
    raise TypeError(f"not content: {type(content).__name__}")


def _character_problems(c: CharacterFile, known: Known) -> list[str]:
    out = []
    if c.id is None:
        out.append("id: a generated character needs an id")
    elif c.id in known.taken:
        out.append(f"id: {c.id!r} is already a character")
    if not c.name.strip():
        out.append("name: empty")
    elif c.name.strip().lower() in {n.lower() for n in known.characters.values()}:
        out.append(f"name: {c.name!r} is already a character's name")
    for name, action in c.actions.items():
        spec = VOCABULARY.get(name)
        if spec is None and name != QUEST_ACTION:
            out.append(f"actions.{name}: not in the action vocabulary ({', '.join(VOCABULARY)})")
        elif spec is not None and set(action.args) != {p.name for p in spec.params}:
            out.append(f"actions.{name}: arguments {sorted(action.args)} are not the vocabulary's")
    return out


def _quest_problems(q: Quest, known: Known) -> list[str]:
    out = []
    if q.id in known.taken:
        out.append(f"id: {q.id!r} is already a quest")
    if q.giver not in known.characters:
        out.append(f"giver: no character {q.giver!r}")
    for i, o in enumerate(q.objectives):
        if isinstance(o, TalkTo) and o.character not in known.characters:
            out.append(f"objectives.{i}.character: no character {o.character!r}")
        if isinstance(o, GoTo) and o.place not in known.places:
            out.append(f"objectives.{i}.place: no place {o.place!r} in any scene")
        if isinstance(o, Bring) and o.to is not None and o.to not in known.characters:
            out.append(f"objectives.{i}.to: no character {o.to!r}")
    return out


def _scene_problems(s: Scene, known: Known) -> list[str]:
    out = []
    if s.id in known.taken:
        out.append(f"id: {s.id!r} is already a scene")
    places = [p.name for p in s.places]
    out += [f"places: {n!r} is named twice" for n in sorted({n for n in places if places.count(n) > 1})]
    props = [p.name for p in s.props]
    out += [f"props: {n!r} is named twice" for n in sorted({n for n in props if props.count(n) > 1})]
    for i, prop in enumerate(s.props):
        if prop.place not in places:
            out.append(f"props.{i}.place: no place {prop.place!r} in this scene")
    cast: list[str] = []
    for i, member in enumerate(s.characters):
        if isinstance(member.character, str):
            cast.append(member.character)
            if member.character not in known.characters:
                out.append(f"characters.{i}.character: no character {member.character!r}")
        else:
            if member.character.id is None:
                out.append(f"characters.{i}.character.id: an inline character needs an id")
            else:
                cast.append(member.character.id)
                if member.character.id in known.characters:
                    out.append(f"characters.{i}.character.id: {member.character.id!r} is already a character")
        if member.place not in places:
            out.append(f"characters.{i}.place: no place {member.place!r} in this scene")
    out += [f"characters: {c!r} is cast twice" for c in sorted({c for c in cast if cast.count(c) > 1})]
    return out


def _story_problems(s: Story, known: Known) -> list[str]:
    out = []
    if s.id in known.taken:
        out.append(f"id: {s.id!r} is already a story")
    if s.teller is not None and s.teller not in known.characters:
        out.append(f"teller: no character {s.teller!r}")
    ids = [n.id for n in s.nodes]
    out += [f"nodes: {n!r} is used twice" for n in sorted({n for n in ids if ids.count(n) > 1})]
    if s.start not in ids:
        out.append(f"start: no node {s.start!r}")
    for i, node in enumerate(s.nodes):
        for j, choice in enumerate(node.choices):
            if choice.next not in ids:
                out.append(f"nodes.{i}.choices.{j}.next: no node {choice.next!r}")
            elif choice.next == node.id:
                out.append(f"nodes.{i}.choices.{j}.next: a choice leads back to its own node")
    if not out:
        by_id = {n.id: n for n in s.nodes}
        seen = reachable(s.start, {n.id: [c.next for c in n.choices] for n in s.nodes})
        out += [f"nodes: {n!r} cannot be reached from the start" for n in ids if n not in seen]
        if not any(not by_id[n].choices for n in seen):
            out.append("nodes: no ending (a node without choices) can be reached")
    return out


def reachable(start: str, leads_to: Mapping[str, Collection[str]]) -> set[str]:
    """The nodes reached from ``start`` (itself included) along ``leads_to``."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        here = todo.pop()
        if here not in seen:
            seen.add(here)
            todo += [n for n in leads_to.get(here, ()) if n not in seen]
    return seen


# ---- quests and stories become part of what a character knows


def attach(character: Character, quests: Collection[Quest] = (), stories: Collection[Story] = ()) -> Character:
    """``character`` knowing the quests it gives and the stories it tells; each quest can be offered with the
    ``offer_quest`` action (its ``quest`` argument: one of the quest ids, added to a declared one's values)."""
    mine = [q for q in quests if q.giver == character.id]
    tales = [s for s in stories if s.teller == character.id]
    if not mine and not tales:
        return character
    knowledge = list(character.knowledge)
    for q in mine:
        steps = "; ".join(_objective_text(o, q.giver) for o in q.objectives)
        reward = ", ".join(f"{r.count} {r.item}" for r in q.rewards) or "your thanks"
        knowledge.append(
            f"You can offer the quest '{q.title}' ({QUEST_ACTION} quest={q.id}): {q.summary} Steps: {steps}. "
            f'Reward: {reward}. To offer it, say: "{q.lines.offer}"'
        )
    for s in tales:
        start = next(n for n in s.nodes if n.id == s.start)
        knowledge.append(f"You can tell the story '{s.title}'. It begins: {start.text}")
    actions = list(character.actions)
    if mine:
        ids = tuple(q.id for q in mine)
        declared = character.action(QUEST_ACTION)
        if declared is None:
            quest = _p("quest", "enum", "which quest", choices=ids)
            actions.append(ActionSpec(QUEST_ACTION, "Offer a quest to the player.", (quest,)))
        else:
            params = []
            for p in declared.params:
                if p.name == "quest" and p.type == "enum":
                    p = dataclasses.replace(p, choices=p.choices + tuple(i for i in ids if i not in p.choices))
                params.append(p)
            actions = [dataclasses.replace(declared, params=tuple(params)) if a is declared else a for a in actions]
    return dataclasses.replace(character, knowledge=tuple(knowledge), actions=tuple(actions))


def _objective_text(o: TalkTo | GoTo | Bring, giver: str) -> str:
    if isinstance(o, TalkTo):
        return f"talk to {o.character}"
    if isinstance(o, GoTo):
        return f"go to the {o.place.replace('_', ' ')}"
    return f"bring {o.count} {o.item.replace('_', ' ')} to {o.to or giver}"
