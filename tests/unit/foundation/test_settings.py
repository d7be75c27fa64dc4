from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from llmasos.errors import ConfigError
from llmasos.settings import load_settings

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("clean_env")]


def test_defaults() -> None:
    s = load_settings()
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8000)
    assert s.asr.model == "tiny.en"
    assert s.llm.backend == "auto"
    assert s.data_dir.name == "llmasos"


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "my.toml"
    cfg.write_text('data_dir = "/srv/llmasos"\n[server]\nport = 9001\nhost = "0.0.0.0"\n[asr]\nmodel = "base"\n')
    s = load_settings(cfg)
    assert (s.server.host, s.server.port, s.asr.model) == ("0.0.0.0", 9001, "base")
    assert s.data_dir == Path("/srv/llmasos")

    monkeypatch.setenv("LLMASOS_SERVER__PORT", "9002")
    s = load_settings(cfg)
    assert s.server.port == 9002  # environment wins over the file
    assert s.server.host == "0.0.0.0"  # the rest of the section still comes from the file


def test_local_file_and_env_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "llmasos.toml").write_text("[asr]\nbeam_size = 3\n")
    assert load_settings().asr.beam_size == 3
    other = tmp_path / "other.toml"
    other.write_text("[asr]\nbeam_size = 4\n")
    monkeypatch.setenv("LLMASOS_CONFIG", str(other))
    assert load_settings().asr.beam_size == 4


def test_overrides_win() -> None:
    s = load_settings(None, server={"port": 1234})
    assert s.server.port == 1234 and s.server.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[asr]\nmodel = 'large'\n", "asr.model"),
        ("[server]\nport = 70000\n", "server.port"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_invalid_file_names_the_field(tmp_path: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match="bad.toml") as info:
        load_settings(cfg)
    assert needle in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_invalid_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMASOS_SERVER__PORT", "eighty")
    with pytest.raises(ConfigError, match="server.port"):
        load_settings()


def test_config_command_prints_effective_settings(cli_env: dict[str, str], llmasos_cmd: list[str]) -> None:
    cli_env["LLMASOS_SERVER__PORT"] = "8123"
    out = subprocess.run([*llmasos_cmd, "config"], env=cli_env, capture_output=True, text=True, check=True)
    assert "[server]" in out.stdout
    assert "port = 8123" in out.stdout
    assert f'data_dir = "{cli_env["LLMASOS_DATA_DIR"]}"' in out.stdout


def test_bad_config_is_a_clear_cli_error(cli_env: dict[str, str], llmasos_cmd: list[str], tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[server]\nport = 'x'\n")
    out = subprocess.run([*llmasos_cmd, "--config", str(cfg), "config"], env=cli_env, capture_output=True, text=True)
    assert out.returncode == 2
    assert "llmasos: error: invalid settings (file" in out.stderr
    assert "Traceback" not in out.stderr
