"""Action choice: what the player's words ask for (cues), the constrained model choice, and the manager placing
the choice in the reply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from dialogue import Backend, Character, DialogueManager, ReplyAction, ReplyDone, ReplySentence, load_character
from dialogue.choice import (
    ActionCall,
    ActionChooser,
    CueChooser,
    ModelChooser,
    choice_schema,
    choose_by_cues,
    parse_choice,
)
from dialogue.testing import ScriptedChatModel

pytestmark = pytest.mark.unit

PACKAGED = Path(__file__).parents[3] / "llmasos" / "characters"


@pytest.fixture(scope="module")
def brom() -> Character:
    return load_character(PACKAGED / "blacksmith.toml")


def calls(c: Character, text: str) -> list[tuple[str, dict[str, object]]]:
    return [(a.name, dict(a.args)) for a in choose_by_cues(c, text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wave at me!", [("wave", {"target": "player"})]),
        ("Brom, hand me the hammer, please.", [("give_item", {"item": "hammer", "target": "player"})]),
        ("Could you please give the steel sword to Elsa?", [("give_item", {"item": "steel_sword", "target": "elsa"})]),
        ("Point at the door and then wave.", [("point_at", {"target": "door"}), ("wave", {"target": "player"})]),
        ("Nod if you agree.", [("nod", {})]),
        ("Smile!", [("emote", {"emotion": "happy"})]),
    ],
)
def test_requests_choose_their_action_and_arguments(brom: Character, text: str, expected: list[object]) -> None:
    assert calls(brom, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I waved at your daughter.",  # narration: the verb does not begin a request
        "Do you wave at customers?",  # a question about it
        "Don't wave at me.",  # a negation
        "Give me a sword.",  # two swords declared: which one? nothing rather than a guess
        "Give it some thought.",  # no declared item named
        "Nod off.",  # more than the action alone
        "How much is the steel sword?",
        "",
    ],
)
def test_talk_and_unclear_requests_choose_nothing(brom: Character, text: str) -> None:
    assert calls(brom, text) == []


def test_a_greeting_waves_only_when_nothing_is_asked(brom: Character) -> None:
    assert calls(brom, "Hello there!") == [("wave", {"target": "player"})]
    assert calls(brom, "Hello! Hand me the hammer.") == [("give_item", {"item": "hammer", "target": "player"})]
    assert calls(brom, "Do you sell swords? Hello.") == []  # a greeting is implicit only as the first thing said


def test_an_undeclared_action_is_never_chosen(character: Character) -> None:
    assert calls(character, "Point at the door.") == []  # the test character declares no point_at
    assert calls(character, "Jump!") == [("jump", {})]  # an action of its own: its name is its cue
    assert calls(character, "Set volume to 7.") == [("set_volume", {"level": 7})]


def test_the_choice_schema_is_none_or_a_declared_action(brom: Character) -> None:
    schema = choice_schema(brom)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    assert validator.is_valid({"action": "none"})
    assert validator.is_valid({"action": "give_item", "args": {"item": "hammer", "target": "player"}})
    assert not validator.is_valid({"action": "give_item", "args": {"item": "axe", "target": "player"}})
    assert not validator.is_valid({"action": "fly", "args": {}})


def test_a_model_choice_is_validated(brom: Character) -> None:
    assert parse_choice(brom, '{"action": "none"}') == ()
    assert parse_choice(brom, '{"action": "wave", "args": {"target": "player"}}') == (
        ActionCall("wave", {"target": "player"}, "model"),
    )
    assert parse_choice(brom, '{"action": "fly", "args": {}}') == ()  # undeclared: rejected, not raised
    assert parse_choice(brom, "not json") == ()


async def test_the_model_chooser_asks_for_the_choice_schema(brom: Character) -> None:
    model = ScriptedChatModel(scripts=[[json.dumps({"action": "nod", "args": {}})]])
    chooser: ActionChooser = ModelChooser(model)
    assert await chooser.choose(brom, "Nod, please.") == (ActionCall("nod", {}, "model"),)
    assert "The player says: Nod, please." in str(model.calls[0][-1].content)


async def test_the_manager_performs_the_chosen_action_at_the_start_and_not_twice(brom: Character) -> None:
    # the model also writes the action: it is performed once, where the choice placed it
    model = ScriptedChatModel(scripts=[["Here you are. [give_item item=hammer target=player] Mind the edge."]])
    manager = DialogueManager(Backend("fake", model), brom, chooser=CueChooser())
    events = [e async for e in manager.reply("Hand me the hammer.")]
    actions = [e for e in events if isinstance(e, ReplyAction)]
    assert actions == [ReplyAction("give_item", {"item": "hammer", "target": "player"}, 0)]
    assert events.index(actions[0]) < next(i for i, e in enumerate(events) if isinstance(e, ReplySentence))
    assert isinstance(events[-1], ReplyDone)


async def test_without_a_chooser_only_the_model_s_actions_are_performed(brom: Character) -> None:
    model = ScriptedChatModel(scripts=[["Aye."]])
    manager = DialogueManager(Backend("fake", model), brom)
    events = [e async for e in manager.reply("Wave at me!")]
    assert not [e for e in events if isinstance(e, ReplyAction)]
