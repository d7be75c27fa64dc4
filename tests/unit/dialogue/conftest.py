"""A character declaring every argument type, shared by the dialogue unit tests."""

from __future__ import annotations

import pytest

from dialogue import ActionParam, ActionSpec, Character


def make_character() -> Character:
    return Character(
        id="tester",
        name="Tess",
        persona="You are Tess, who tests things.",
        greeting="Hi!",
        actions=(
            ActionSpec("wave", "Wave.", (ActionParam("target", "string"),)),
            ActionSpec("nod", "Nod."),
            ActionSpec(
                "give_item",
                "Give.",
                (ActionParam("item", "enum", choices=("sword", "map")), ActionParam("target", "string")),
            ),
            ActionSpec("emote", "Emote.", (ActionParam("emotion", "enum", choices=("happy", "sad")),)),
            ActionSpec("set_volume", "Volume.", (ActionParam("level", "integer"),)),
            ActionSpec("jump", "Jump.", (ActionParam("height", "number", required=False),)),
            ActionSpec("lamp", "Lamp.", (ActionParam("on", "boolean"),)),
        ),
    )


@pytest.fixture
def character() -> Character:
    return make_character()
