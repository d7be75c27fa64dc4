"""`llmasos transcribe` and `llmasos say` as a user runs them (subprocess, network refused)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from voice.audiofile import read_wav
from voice.wer import wer

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data" / "voice"
JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_transcribe_prints_one_transcript_per_file(cli_env: dict[str, str], llmasos_cmd: list[str]) -> None:
    out = _run([*llmasos_cmd, "transcribe", str(DATA / "jfk.flac"), str(DATA / "LJ001-0008.wav")], cli_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    assert wer(JFK, lines[0]) <= 0.05
    assert wer((DATA / "LJ001-0008.txt").read_text(), lines[1]) <= 0.25


def test_transcribe_json_has_words(cli_env: dict[str, str], llmasos_cmd: list[str]) -> None:
    out = _run([*llmasos_cmd, "transcribe", "--json", str(DATA / "LJ001-0002.wav")], cli_env)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["language"] == "en" and record["words"]
    assert record["words"][0]["start"] <= record["words"][-1]["end"]


def test_bad_files_are_clear_errors(cli_env: dict[str, str], llmasos_cmd: list[str], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes((DATA / "jfk.flac").read_bytes()[:20_000])
    text = tmp_path / "notes.mp3"
    text.write_text("not audio")
    for bad in (corrupt, text, tmp_path / "missing.wav"):
        out = _run([*llmasos_cmd, "transcribe", str(bad)], cli_env)
        assert out.returncode != 0
        assert out.stderr.startswith("llmasos: error: "), out.stderr
        assert str(bad) in out.stderr and "Traceback" not in out.stderr
    # a bad file among good ones: the good ones are still transcribed, the exit status says something failed
    out = _run([*llmasos_cmd, "transcribe", str(text), str(DATA / "LJ001-0008.wav")], cli_env)
    assert out.returncode == 1 and len(out.stdout.strip().splitlines()) == 1
    assert "llmasos: error: " in out.stderr and "Traceback" not in out.stderr


def test_say_writes_speech(cli_env: dict[str, str], llmasos_cmd: list[str], tmp_path: Path) -> None:
    wav = tmp_path / "out.wav"
    out = _run([*llmasos_cmd, "say", "Welcome to the village of Oakvale.", "-o", str(wav)], cli_env)
    assert out.returncode == 0, out.stderr
    pcm, rate = read_wav(wav)
    assert rate == 22_050 and len(pcm) > rate  # more than a second of speech
    heard = _run([*llmasos_cmd, "transcribe", str(wav)], cli_env)
    assert wer("Welcome to the village of Oakvale.", heard.stdout) <= 0.35, heard.stdout


def test_say_errors(cli_env: dict[str, str], llmasos_cmd: list[str], tmp_path: Path) -> None:
    out = _run([*llmasos_cmd, "say", "...", "-o", str(tmp_path / "x.wav")], cli_env)
    assert out.returncode != 0 and out.stderr.startswith("llmasos: error: ")
    out = _run([*llmasos_cmd, "say", "Hello.", "-o", str(tmp_path / "no" / "such" / "dir" / "x.wav")], cli_env)
    assert out.returncode != 0 and "llmasos: error: " in out.stderr and "Traceback" not in out.stderr
