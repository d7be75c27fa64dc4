"""Character files: the shipped ones, our TOML/JSON format, Character Card V2 import, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dialogue import CharacterError, CharacterNotFoundError, find, load_character, scan
from llmasos.cli import main
from llmasos.dialogue_factory import PACKAGED_CHARACTERS

pytestmark = pytest.mark.unit

ACTION_NAMES = {"wave", "nod", "point_at", "walk_to", "give_item", "emote"}


def test_shipped_characters_load_with_typed_actions() -> None:
    found, errors = scan(PACKAGED_CHARACTERS)
    assert errors == []
    assert {"blacksmith", "museum_guide", "quest_giver", "innkeeper"} <= set(found)
    for character in found.values():
        assert character.persona and character.greeting and character.voice
        assert character.actions
    declared = {a.name for c in found.values() for a in c.actions}
    assert ACTION_NAMES <= declared
    emote = found["blacksmith"].action("emote")
    assert emote is not None and emote.params[0].type == "enum" and "happy" in emote.params[0].choices
    give = found["blacksmith"].action("give_item")
    assert give is not None and [p.name for p in give.params] == ["item", "target"]
    walk = found["museum_guide"].action("walk_to")
    assert walk is not None and walk.params[0].name == "location"


def test_card_v2_maps_onto_a_character() -> None:
    hilda = load_character(PACKAGED_CHARACTERS / "innkeeper.json")
    assert hilda.id == "innkeeper" and hilda.name == "Hilda"
    assert "Hilda runs the Sleeping Fox" in hilda.persona and "cheerful" in hilda.persona
    assert "{{" not in hilda.persona + hilda.scenario + hilda.examples
    assert "the player walks in" in hilda.scenario
    assert hilda.greeting.startswith("Come in")
    assert "Any news?" in hilda.examples
    assert [a.name for a in hilda.actions] == ["wave", "nod"]


def test_a_fallback_line_in_our_format_and_in_a_card(tmp_path: Path) -> None:
    brom = load_character(PACKAGED_CHARACTERS / "blacksmith.toml")
    assert brom.fallback.startswith("Hm.")
    card = {"spec": "chara_card_v2", "data": {"name": "Zed", "extensions": {"llmasos": {"fallback": " Eh? "}}}}
    (tmp_path / "zed.json").write_text(json.dumps(card))
    assert load_character(tmp_path / "zed.json").fallback == "Eh?"
    (tmp_path / "long.toml").write_text(f'name = "L"\npersona = "p"\nfallback = "{"x" * 201}"\n')
    assert _error(tmp_path / "long.toml").field == "fallback"


def test_minimal_card_without_actions(tmp_path: Path) -> None:
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Zed", "first_mes": "Yo."}}
    (tmp_path / "Zed.json").write_text(json.dumps(card))
    zed = load_character(tmp_path / "Zed.json")
    assert (zed.id, zed.name, zed.greeting, zed.actions) == ("zed", "Zed", "Yo.", ())
    assert zed.persona


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ('persona = "x"\n', "name", "required"),
        ('name = "A"\npersona = "x"\n[actions.wave]\nargs.target = { type = "colour" }\n',
         "actions.wave.args.target.type", "string"),
        ('name = "A"\npersona = "x"\n[actions.emote]\nargs.emotion = { type = "enum" }\n',
         "actions.emote.args.emotion", "values"),
        ('name = "A"\npersona = "x"\nmood = "odd"\n', "mood", "not permitted"),
        ('name = "A"\npersona = "x"\n[actions."bad name"]\n', 'actions.bad name', "action name"),
        ('name = "A"\npersona = "x"\nid = "Not An Id"\n', "id", "pattern"),
    ],
)  # fmt: skip
def test_invalid_file_names_file_and_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(CharacterError) as info:
        load_character(path)
    assert info.value.path == path and info.value.field == field
    message = str(info.value)
    assert str(path) in message and f"field {field}" in message and words in message


def test_invalid_toml_and_json_and_card(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("name = \n")
    (tmp_path / "b.json").write_text("{nope")
    (tmp_path / "c.json").write_text(json.dumps({"spec": "chara_card_v2", "data": {"name": ""}}))
    (tmp_path / "d.json").write_text(json.dumps({"spec": "chara_card_v3", "data": {}}))
    messages = {p.name: str(_error(p)) for p in sorted(tmp_path.iterdir())}
    assert "not valid TOML" in messages["a.toml"]
    assert "not valid JSON" in messages["b.json"]
    assert "field data.name" in messages["c.json"]
    assert "field spec" in messages["d.json"] and "chara_card_v2" in messages["d.json"]


def _error(path: Path) -> CharacterError:
    with pytest.raises(CharacterError) as info:
        load_character(path)
    return info.value


def test_duplicate_ids_and_unknown_id(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text('id = "same"\nname = "A"\npersona = "x"\n')
    (tmp_path / "two.toml").write_text('id = "same"\nname = "B"\npersona = "y"\n')
    found, errors = scan(tmp_path)
    assert list(found) == ["same"] and len(errors) == 1 and errors[0].field == "id"
    with pytest.raises(CharacterNotFoundError, match="known: same"):
        find(tmp_path, "nobody")
    assert find(tmp_path, "same").name == "A"


@pytest.mark.parametrize("bad", ["../one", "one/../one", "/etc/passwd", "", "ONE", "a" * 65])
def test_an_id_never_names_a_path(tmp_path: Path, bad: str) -> None:
    (tmp_path / "chars").mkdir()
    (tmp_path / "one.toml").write_text('name = "Outside"\npersona = "x"\n')
    with pytest.raises(CharacterNotFoundError, match="not a character id"):
        find(tmp_path / "chars", bad)


def test_cli_lists_characters_id_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["characters"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = [line.split("\t")[0] for line in lines]
    assert ids == sorted(ids) and {"blacksmith", "museum_guide", "quest_giver"} <= set(ids)
    assert any(line.startswith("blacksmith\tBrom Ironhand\tactions: wave, nod") for line in lines)


def test_cli_reports_an_invalid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.toml").write_text('name = "Good"\npersona = "fine"\n')
    (tmp_path / "bad.toml").write_text('name = "Bad"\n')
    monkeypatch.setenv("LLMASOS_CHARACTERS_DIR", str(tmp_path))
    assert main(["characters"]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == ["good\tGood\tactions: -"]
    assert "bad.toml" in out.err and "field persona" in out.err
