"""What the 3D client is shown (`llmasos.world`): a stage made from a character's declarations, a room's scene,
a scene by itself; and the vendored three.js, checked against its pinned sha256."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dialogue.characters import load_character
from dialogue.kinds import Scene
from dialogue.types import RoomSpec
from llmasos.world import VENDOR, LayoutError, layout, vendor_problems

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
PACKAGED = ROOT / "llmasos" / "characters"


@pytest.fixture(scope="module")
def characters() -> dict[str, object]:
    found = [load_character(PACKAGED / f) for f in ("blacksmith.toml", "museum_guide.toml", "innkeeper.json")]
    return {c.id: c for c in found}


def test_a_character_s_stage_has_its_places_and_items(characters: dict) -> None:  # type: ignore[type-arg]
    brom = layout(characters, {}, {}, character="blacksmith")
    assert [p["name"] for p in brom["places"]] == ["counter", "door"]
    assert [p["name"] for p in brom["props"]] == ["iron_sword", "steel_sword", "horseshoe", "hammer"]
    assert brom["characters"] == [{"id": "blacksmith", "name": "Brom Ironhand", "place": "counter", "x": 0.0}]
    ada = layout(characters, {}, {}, character="museum_guide")
    names = [p["name"] for p in ada["places"]]
    assert names[:2] == ["counter", "door"] and set(names[2:]) == {
        "entrance", "dinosaur_hall", "mineral_hall", "cafe", "gift_shop"
    }  # fmt: skip
    spots = {(p["x"], p["z"]) for p in ada["places"]}
    assert len(spots) == len(names)  # every place somewhere of its own


def test_a_room_opens_on_its_scene_or_on_a_stage(characters: dict) -> None:  # type: ignore[type-arg]
    scene = Scene.model_validate(
        {"id": "inn", "name": "The Sleeping Fox", "places": [{"name": "bar", "x": 1, "z": -2}, {"name": "hearth"}],
         "characters": [{"character": "blacksmith", "place": "hearth"}]}
    )  # fmt: skip
    rooms = {
        "inn": RoomSpec(id="inn", name="Inn", characters=("innkeeper", "blacksmith"), scene="inn"),
        "plain": RoomSpec(id="plain", name="Plain", characters=("innkeeper", "blacksmith")),
    }
    drawn = layout(characters, rooms, {"inn": scene}, room="inn")
    assert drawn["from"] == "scene:inn" and [p["name"] for p in drawn["places"]] == ["bar", "hearth"]
    assert {c["id"]: c["place"] for c in drawn["characters"]} == {"innkeeper": "bar", "blacksmith": "hearth"}
    stage = layout(characters, rooms, {}, room="plain")
    assert stage["from"] == "stage" and [c["id"] for c in stage["characters"]] == ["innkeeper", "blacksmith"]
    assert layout(characters, rooms, {"inn": scene}, scene="inn")["name"] == "The Sleeping Fox"
    for bad in ({"room": "nope"}, {"character": "nope"}, {"scene": "nope"}):
        with pytest.raises(LayoutError, match="nope"):
            layout(characters, rooms, {}, **bad)


def test_the_vendored_three_js_is_what_was_pinned(tmp_path: Path) -> None:
    vendor = ROOT / "llmasos" / "web" / "vendor"
    assert vendor_problems(vendor) == []
    copy = tmp_path / "vendor"
    shutil.copytree(vendor, copy)
    (copy / "three" / "three.core.min.js").write_text("/* not three.js */")
    (copy / next(iter(VENDOR))).unlink()
    problems = vendor_problems(copy)
    assert len(problems) == 2 and "missing" in problems[0] and "sha256 differs" in problems[1]
