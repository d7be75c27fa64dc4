"""The 3D world client's side of the server: the scene a session is shown in, and the vendored three.js.

``layout`` answers what `GET /world/layout` returns: the places, props and characters of a room's scene (a
scene file, generated or written) or, for a 1:1 session or a room with no scene, a small stage made from the
characters' own declarations: each `walk_to` location is a place, each `give_item` item a prop on the counter,
and every stage has a counter and a door. Positions are metres on the floor (x right, z toward the player).

three.js is vendored (``web/vendor/three``, MIT, its LICENSE beside it), pinned by version and sha256: a file
that does not match is not served, and the page says why. Nothing is fetched from elsewhere at run time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dialogue.kinds import Scene
from dialogue.types import Character, RoomSpec

THREE_VERSION = "0.181.0"  # npm `three`, the minified ES module build
VENDOR: dict[str, str] = {
    "three/three.module.min.js": "ff29585116898cc56ddeb871764f2c8edf02cc2ca5b7521056f332d11053b799",
    "three/three.core.min.js": "295a28f4a9786dd24a2a357a4ce90921eb041127e53a508335b9a0556c1e0875",
    "three/LICENSE": "bfe119ea4fd413f5f7ca3fcd63adb0c4a073ed39daa2fe7d3e6b769e21272601",
}
STAGE_RADIUS = 3.2  # metres from the centre to a derived place


def vendor_problems(vendor_dir: Path) -> list[str]:
    """What is wrong with the vendored files (missing, or not the pinned bytes); empty when all is well."""
    problems = []
    for name, digest in VENDOR.items():
        path = vendor_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name} is not three.js {THREE_VERSION} as pinned (sha256 differs)")
    return problems


def _place(name: str, x: float, z: float, label: str = "") -> dict[str, Any]:
    return {"name": name, "label": label or name.replace("_", " "), "x": round(x, 2), "z": round(z, 2)}


def _enum_values(characters: Iterable[Character], action: str, param: str) -> list[str]:
    values: list[str] = []
    for c in characters:
        spec = c.action(action)
        arg = spec.param(param) if spec is not None else None
        if arg is not None:
            values.extend(v for v in arg.choices if v not in values)
    return values


def stage(characters: list[Character], name: str) -> dict[str, Any]:
    """A stage made from what the characters declare (no scene file): their places and their items."""
    locations = [v for v in _enum_values(characters, "walk_to", "location") if v not in ("counter", "door")]
    places = [_place("counter", 0.0, -0.4), _place("door", 2.8, -2.2)]
    for i, location in enumerate(locations[:10]):
        angle = math.pi * (0.15 + 0.7 * i / max(1, len(locations) - 1)) if len(locations) > 1 else math.pi / 2
        places.append(_place(location, -STAGE_RADIUS * math.cos(angle), -STAGE_RADIUS * math.sin(angle) + 0.4))
    props = [
        {"name": item, "place": "counter", "label": item.replace("_", " ")}
        for item in _enum_values(characters, "give_item", "item")[:12]
    ]
    cast = [
        {"id": c.id, "name": c.name, "place": "counter", "x": round(1.6 * (i - (len(characters) - 1) / 2), 2)}
        for i, c in enumerate(characters)
    ]
    return {"name": name, "description": "", "places": places, "props": props, "characters": cast, "from": "stage"}


def _cast_ids(scene: Scene) -> list[tuple[str, str]]:
    """(character id, place) of each character the scene casts, by id or written inline."""
    return [
        (c.character if isinstance(c.character, str) else (c.character.id or ""), c.place) for c in scene.characters
    ]


def from_scene(scene: Scene, characters: list[Character]) -> dict[str, Any]:
    """A scene file as the client draws it; the room's characters stand where the scene casts them (else at its
    first place)."""
    where = dict(_cast_ids(scene))
    spots = {p.name: p for p in scene.places}
    first = scene.places[0]
    cast = []
    for i, c in enumerate(characters):
        place = spots.get(where.get(c.id, ""), first)
        cast.append({"id": c.id, "name": c.name, "place": place.name, "x": round(place.x + 0.9 * i, 2)})
    return {
        "name": scene.name,
        "description": scene.description,
        "places": [_place(p.name, p.x, p.z, p.label) for p in scene.places],
        "props": [
            {"name": p.name, "place": p.place, "label": p.label or p.name.replace("_", " ")} for p in scene.props
        ],
        "characters": cast,
        "from": f"scene:{scene.id}",
    }


class LayoutError(LookupError):
    """No such character, room or scene: the message says which."""


def layout(
    characters: Mapping[str, Character],
    rooms: Mapping[str, RoomSpec],
    scenes: Mapping[str, Scene],
    *,
    character: str | None = None,
    room: str | None = None,
    scene: str | None = None,
) -> dict[str, Any]:
    """What the 3D client shows for a 1:1 session with ``character``, a ``room``, or a ``scene`` itself."""
    if scene is not None:
        if scene not in scenes:
            raise LayoutError(f"no scene {scene!r}")
        found = scenes[scene]
        return from_scene(found, [characters[i] for i, _ in _cast_ids(found) if i in characters])
    if room is not None:
        spec = rooms.get(room)
        if spec is None:
            raise LayoutError(f"no room {room!r}")
        cast = [characters[c] for c in spec.characters if c in characters]
        if spec.scene is not None and spec.scene in scenes:
            return from_scene(scenes[spec.scene], cast)
        return stage(cast, spec.name)
    if character is None or character not in characters:
        raise LayoutError(f"no character {character!r}")
    c = characters[character]
    return stage([c], c.name)
