"""Room files and character voices as the server loads them: the shipped rooms, clear errors that name the
file, rooms_dir beside the shipped rooms, a voice that does not exist refused with its file's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogue import CharacterError, RoomError, VoiceChoice, check_characters, load_character, load_room, scan_rooms
from llmasos.dialogue_factory import PACKAGED_CHARACTERS, PACKAGED_ROOMS
from llmasos.engine import load_characters, load_rooms
from llmasos.errors import ConfigError
from llmasos.settings import load_settings

pytestmark = pytest.mark.unit

BLACKSMITH = (PACKAGED_CHARACTERS / "blacksmith.toml").read_text(encoding="utf-8")


def test_the_shipped_rooms_load_and_name_shipped_characters(tmp_path: Path) -> None:
    lines: list[str] = []
    settings = load_settings(None, data_dir=str(tmp_path))
    rooms = load_rooms(settings, load_characters(settings, lines.append), lines.append)
    tavern = rooms["tavern"]
    assert tavern.name == "The Sleeping Fox" and tavern.characters == ("innkeeper", "blacksmith")
    assert tavern.scenario and tavern.facts
    assert not [line for line in lines if line.startswith("skipped")]


def test_a_room_file_error_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "Nowhere"\ncharacters = []\n', encoding="utf-8")
    with pytest.raises(RoomError, match=r"bad\.toml \(field characters\)"):
        load_room(bad)
    bad.write_text('name = "Nowhere"\ncharacters = ["a", "a"]\n', encoding="utf-8")
    with pytest.raises(RoomError, match="listed twice"):
        load_room(bad)
    bad.write_text('name = "Nowhere"\ncharacters = ["../x"]\n', encoding="utf-8")
    with pytest.raises(RoomError, match="not a character id"):
        load_room(bad)
    bad.write_text("name = ", encoding="utf-8")
    with pytest.raises(RoomError, match="not valid TOML"):
        load_room(bad)


def test_a_room_with_an_unknown_character_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "hall.toml").write_text('name = "Hall"\ncharacters = ["blacksmith", "ghost"]\n', encoding="utf-8")
    rooms, errors = scan_rooms(tmp_path)
    assert errors == []
    with pytest.raises(RoomError, match=r"hall\.toml.*no character 'ghost'"):
        check_characters(rooms["hall"], {"blacksmith"})


def test_rooms_dir_adds_rooms_and_replaces_a_shipped_one_by_id(tmp_path: Path) -> None:
    mine = tmp_path / "rooms"
    mine.mkdir()
    (mine / "tavern.toml").write_text('name = "My Tavern"\ncharacters = ["innkeeper"]\n', encoding="utf-8")
    (mine / "forge.json").write_text('{"name": "The Forge", "characters": ["blacksmith"]}', encoding="utf-8")
    (mine / "broken.toml").write_text('name = "Broken"\ncharacters = ["ghost"]\n', encoding="utf-8")
    settings = load_settings(None, data_dir=str(tmp_path), rooms_dir=str(mine))
    lines: list[str] = []
    rooms = load_rooms(settings, load_characters(settings, lines.append), lines.append)
    assert rooms["tavern"].name == "My Tavern" and rooms["forge"].characters == ("blacksmith",)
    assert "broken" not in rooms and "square" in rooms
    assert [line for line in lines if line.startswith("skipped")] == [
        f"skipped: {mine / 'broken.toml'} (field characters): no character 'ghost' (known: "
        "blacksmith, innkeeper, museum_guide, quest_giver)"
    ]


def test_shipped_rooms_are_skipped_quietly_for_a_users_own_characters(tmp_path: Path) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    (characters / "brom.toml").write_text(BLACKSMITH, encoding="utf-8")
    settings = load_settings(None, data_dir=str(tmp_path), characters_dir=str(characters))
    lines: list[str] = []
    assert load_rooms(settings, load_characters(settings, lines.append), lines.append) == {}
    assert not [line for line in lines if line.startswith("skipped")]


def test_a_character_voice_with_its_own_pace_and_pitch(tmp_path: Path) -> None:
    path = tmp_path / "ann.toml"
    path.write_text('name = "Ann"\npersona = "p"\nvoice = { name = "joe", rate = 1.1, pitch = 1.2 }\n', "utf-8")
    assert load_character(path).voice == VoiceChoice("joe", 1.1, 1.2)
    path.write_text('name = "Ann"\npersona = "p"\nvoice = "joe"\n', "utf-8")
    assert load_character(path).voice == VoiceChoice("joe", 1.0, 1.0)
    assert {c.voice.pitch for c in load_characters(load_settings(None, data_dir=str(tmp_path))).values()} != {1.0}


def test_an_unknown_voice_is_refused_with_the_files_name(tmp_path: Path) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    (characters / "brom.toml").write_text(BLACKSMITH, encoding="utf-8")
    (characters / "ghost.toml").write_text('name = "Ghost"\npersona = "p"\nvoice = "whisperer"\n', "utf-8")
    settings = load_settings(None, data_dir=str(tmp_path), characters_dir=str(characters))
    lines: list[str] = []
    assert list(load_characters(settings, lines.append)) == ["brom"]
    assert any(
        line.startswith(f"skipped: {characters / 'ghost.toml'} (field voice): unknown voice 'whisperer'; voices: joe")
        for line in lines
    ), lines
    (characters / "brom.toml").unlink()
    with pytest.raises(ConfigError, match="no valid character"):
        load_characters(settings, lines.append)


def test_a_voice_from_the_users_voices_dir_is_known(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "whisperer.onnx").write_bytes(b"")
    characters = tmp_path / "characters"
    characters.mkdir()
    (characters / "ghost.toml").write_text('name = "Ghost"\npersona = "p"\nvoice = "whisperer"\n', "utf-8")
    settings = load_settings(
        None, data_dir=str(tmp_path), characters_dir=str(characters), tts={"voices_dir": str(voices)}
    )
    assert list(load_characters(settings)) == ["ghost"]


def test_a_voice_name_is_never_a_path(tmp_path: Path) -> None:
    path = tmp_path / "ann.toml"
    path.write_text('name = "Ann"\npersona = "p"\nvoice = "../../etc/passwd"\n', "utf-8")
    with pytest.raises(CharacterError, match="not a voice name"):
        load_character(path)


def test_shipped_rooms_dir_is_a_package_folder() -> None:
    assert (PACKAGED_ROOMS / "tavern.toml").is_file()
