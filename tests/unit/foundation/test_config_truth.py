"""Configuration that does not lie: a typo in the environment is reported, `llmasos config` loads back, a
config file's relative paths are relative to it, TURN credentials reach aiortc and clients, and one id rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmasos.ids import CHARACTER_ID, IdError, character_id, player_id
from llmasos.server import ice_servers
from llmasos.settings import dump_toml, load_settings, unknown_environment
from rtc.peer import first_turn_url, rtc_configuration

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("clean_env")]


def test_an_environment_variable_that_sets_nothing_is_reported_with_a_hint() -> None:
    env = {
        "LLMASOS_LLM_BACKEND": "openai",  # one underscore where two were meant
        "LLMASOS_CHARACTER_DIR": "/x",  # characters_dir
        "LLMASOS_SERVER__PORT": "9000",  # fine
        "LLMASOS_LOG_LEVEL": "debug",  # fine
        "LLMASOS_CONFIG": "x.toml",  # the config file, not a setting
        "LLMASOS_NOPE": "1",
        "OTHER": "1",
    }
    problems = unknown_environment(env)
    assert len(problems) == 3, problems
    assert "LLMASOS_CHARACTER_DIR matches no setting (did you mean LLMASOS_CHARACTERS_DIR?)" in problems[0]
    assert "LLMASOS_LLM_BACKEND matches no setting (did you mean LLMASOS_LLM__BACKEND?)" in problems[1]
    assert problems[2].startswith("the environment variable LLMASOS_NOPE matches no setting; it is ignored")


def test_the_cli_warns_about_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMASOS_")}
    env.update(LLMASOS_LLM_BACKEND="openai", LLMASOS_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "llmasos", "config"], capture_output=True, text=True, env=env, check=True
    )
    assert "LLMASOS_LLM_BACKEND matches no setting (did you mean LLMASOS_LLM__BACKEND?)" in out.stderr


def test_config_output_loads_back_with_lists_tables_and_no_secret(tmp_path: Path) -> None:
    turn = {"urls": ["turn:turn.example.org:3478", "turns:turn.example.org:5349"], "username": "u", "credential": "p"}
    settings = load_settings(
        None,
        server={"ice_servers": ["stun:stun.example.org:3478", turn], "allowed_origins": ["https://a.example"]},
    )
    settings = load_settings(None, server={**settings.server.model_dump(), "secret": "s3cret"})
    text = dump_toml(settings)
    assert "s3cret" not in text
    path = tmp_path / "round.toml"
    path.write_text(text)
    again = load_settings(path)
    assert again.server.ice_servers == settings.server.ice_servers
    assert again.server.allowed_origins == ("https://a.example",)
    assert again.model_dump(exclude={"server": {"secret"}}) == settings.model_dump(exclude={"server": {"secret"}})


def test_relative_paths_in_a_config_file_are_relative_to_the_file(tmp_path: Path) -> None:
    home = tmp_path / "conf"
    home.mkdir()
    (home / "llmasos.toml").write_text(
        'data_dir = "data"\ncharacters_dir = "chars"\n[tts]\nvoices_dir = "/abs/voices"\n'
    )
    settings = load_settings(home / "llmasos.toml")
    assert settings.data_dir == home / "data" and settings.characters_dir == home / "chars"
    assert settings.tts.voices_dir == Path("/abs/voices")


def test_turn_credentials_reach_aiortc_and_clients() -> None:
    settings = load_settings(
        None,
        server={"ice_servers": [{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]},
    )
    (server,) = rtc_configuration(ice_servers(settings)).iceServers
    assert (server.urls, server.username, server.credential) == (["turn:turn.example.org:3478"], "u", "p")
    assert ice_servers(settings)[0].browser() == {
        "urls": ["turn:turn.example.org:3478"],
        "username": "u",
        "credential": "p",
    }


@pytest.mark.parametrize(
    ("server", "needle"),
    [
        ({"urls": "turn:t.example:3478"}, "needs a username and a credential"),
        ({"urls": "http://t.example"}, "is not a stun:"),
    ],
)
def test_a_bad_ice_server_is_refused_by_name(server: dict[str, str], needle: str) -> None:
    from llmasos.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        load_settings(None, server={"ice_servers": [server]})


def test_one_id_rule() -> None:
    from dialogue import characters, rooms
    from rtc import protocol

    assert characters._ID == rooms._ID == protocol._ID_PATTERN == CHARACTER_ID  # the layers agree
    assert player_id("Ann.Smith-2") == "Ann.Smith-2"
    for bad in ("ann smith", "", "x" * 65, "ann/../bob"):
        with pytest.raises(IdError, match="is not a player id"):
            player_id(bad)
    assert character_id("quest_giver") == "quest_giver"
    with pytest.raises(IdError, match="is not a character id"):
        character_id("Blacksmith")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["chat", "--character", "blacksmith", "--player", "ann smith"], "is not a player id"),
        (["token", "--player", "ann smith", "--character", "blacksmith"], "is not a player id"),
        (["token", "--player", "ann", "--character", "blacksmith", "--ttl", "-5"], "the ttl must be positive"),
        (["token", "--player", "ann", "--character", "nobody"], "no character 'nobody'"),
        (["memory", "add", "x", "--character", "blacksmth"], "no character 'blacksmth'"),
        (["memory", "forget", "--player", "ann smith"], "is not a player id"),
    ],
)
def test_the_cli_holds_the_same_rule(argv: list[str], needle: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMASOS_")}
    env["LLMASOS_DATA_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "llmasos", *argv], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and needle in out.stderr, out.stderr


def test_a_relay_policy_needs_a_turn_server() -> None:
    from llmasos.errors import ConfigError

    with pytest.raises(ConfigError, match="'relay' needs a TURN server"):
        load_settings(None, server={"ice_servers": ["stun:stun.example.org:3478"], "ice_transport_policy": "relay"})


async def test_the_relay_policy_reaches_aiortc_and_clients(tmp_path: Path) -> None:
    import httpx

    from llmasos.server import create_app

    turn = {"urls": ["turn:turn.example.org:3478", "turns:turn.example.org:5349"], "username": "u", "credential": "p"}
    settings = load_settings(
        None, data_dir=str(tmp_path), server={"ice_servers": [turn], "ice_transport_policy": "relay"}
    )
    assert (
        rtc_configuration(ice_servers(settings), settings.server.ice_transport_policy).iceTransportPolicy.value
        == "relay"
    )
    assert first_turn_url(ice_servers(settings)) == "turn:turn.example.org:3478"  # the one aiortc allocates on
    app = create_app(settings, loader=lambda s, p: None)  # type: ignore[arg-type,return-value]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
        config = (await c.get("/rtc/config")).json()
    assert config == {"iceServers": [{**turn}], "iceTransportPolicy": "relay"}
