"""Inline action markup: both syntaxes, split anywhere, invalid ones dropped with a reason."""

from __future__ import annotations

import pytest

from dialogue import Character, ReplyAction
from dialogue.actions import ActionRejected, check_call, json_schema, markup_help, tool_definitions
from dialogue.markup import ActionMarkupParser

pytestmark = pytest.mark.unit


def parse(character: Character, chunks: list[str]) -> tuple[str, list[ReplyAction], list[tuple[str, str]]]:
    drops: list[tuple[str, str]] = []
    parser = ActionMarkupParser(character, lambda text, reason: drops.append((text, reason)))
    pieces = [p for c in chunks for p in parser.feed(c)] + parser.close()
    text = "".join(p for p in pieces if isinstance(p, str))
    return text, [p for p in pieces if isinstance(p, ReplyAction)], drops


def test_both_syntaxes_become_typed_actions_at_their_offset(character: Character) -> None:
    text, actions, drops = parse(
        character,
        ["Hello [wa", "ve target=player] friend. *give_item(sword, tar", 'get="the player")* Here! [set_volume 7]'],
    )
    assert text == "Hello friend. Here! "
    assert drops == []
    assert actions == [
        ReplyAction("wave", {"target": "player"}, 6),
        ReplyAction("give_item", {"item": "sword", "target": "the player"}, 14),
        ReplyAction("set_volume", {"level": 7}, 20),
    ]


def test_types_are_converted(character: Character) -> None:
    _, actions, drops = parse(character, ["[lamp on=TRUE] [jump height=2.5] [jump] [emote Happy] *nod*"])
    assert drops == []
    assert [(a.name, dict(a.args)) for a in actions] == [
        ("lamp", {"on": True}),
        ("jump", {"height": 2.5}),
        ("jump", {}),
        ("emote", {"emotion": "happy"}),
        ("nod", {}),
    ]


@pytest.mark.parametrize(
    ("markup", "reason"),
    [
        ("[fly to=moon]", "not declared"),
        ("[wave]", "missing required"),
        ("[wave target=player colour=red]", "no argument 'colour'"),
        ("[emote emotion=angry]", "not one of"),
        ("[set_volume level=loud]", "integer"),
        ("[lamp on=maybe]", "true or false"),
        ("[wave target=player target=npc]", "twice"),
        ('[wave target="a;b"]', "plain name"),
        ("*wave(target=player, player)*", "positional argument after keyword"),
        ("*wave(player, target=npc)*", "given twice"),
        ("[nod 1]", "takes 0 arguments"),
        ("*wave(player*", "malformed"),
        ("[123]", "no action name"),
        ("*smiles warmly*", "stage direction"),
    ],
)
def test_invalid_markup_is_dropped_with_a_reason(character: Character, markup: str, reason: str) -> None:
    text, actions, drops = parse(character, [f"Well {markup} then."])
    assert actions == []
    assert text == "Well then."
    assert len(drops) == 1 and reason in drops[0][1]


def test_emphasis_is_spoken_and_stray_brackets_are_not(character: Character) -> None:
    text, actions, drops = parse(character, ["I *really* like ] it ** a lot."])
    assert (text, actions, drops) == ("I really like it a lot.", [], [])


def test_unclosed_markup(character: Character) -> None:
    text, actions, drops = parse(character, ["Look [wave target=player\nover there. And [nod"])
    assert actions == [] and text == "Look wave target=player\nover there. And "
    assert [r for _, r in drops] == ["action markup not closed on its line", "unterminated action markup"]
    text, _, _ = parse(character, ["so *very tired"])
    assert text == "so very tired"


def test_overlong_markup_is_spoken_as_text(character: Character) -> None:
    text, actions, drops = parse(character, ["[" + "la " * 80 + "] done"])
    assert actions == [] and text.startswith("la la") and text.endswith("done")
    assert len(drops) == 1


def test_check_call_for_tool_calls_wants_json_types(character: Character) -> None:
    assert check_call(character, "set_volume", {"level": 3}, from_text=False) == {"level": 3}
    assert check_call(character, "jump", {"height": 2}, from_text=False) == {"height": 2.0}
    for name, args in [
        ("set_volume", {"level": "3"}),
        ("set_volume", {"level": True}),
        ("set_volume", {"level": 2.5}),
        ("jump", {"height": float("inf")}),
        ("lamp", {"on": 1}),
        ("wave", {"target": 5}),
        ("emote", {"emotion": None}),
    ]:
        with pytest.raises(ActionRejected):
            check_call(character, name, args, from_text=False)


def test_schemas_for_tools_and_prompt(character: Character) -> None:
    schema = json_schema(character.action("give_item"))  # type: ignore[arg-type]
    assert schema["required"] == ["item", "target"] and schema["additionalProperties"] is False
    assert schema["properties"]["item"] == {"type": "string", "enum": ["sword", "map"]}
    tools = tool_definitions(character)
    assert [t["function"]["name"] for t in tools] == [a.name for a in character.actions]
    assert json_schema(character.action("jump"))["required"] == []  # type: ignore[arg-type]
    help_text = markup_help(character)
    assert "[give_item item=sword|map target=player] Give." in help_text.splitlines()
    assert "[nod] Nod." in help_text.splitlines()
