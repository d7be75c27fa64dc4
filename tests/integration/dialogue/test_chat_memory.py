"""`llmasos chat` remembers across processes: a fact told in one process is found by `llmasos memory search`
and is in the prompt of a new process for the same player, never in another player's."""

from __future__ import annotations

import subprocess

import pytest

from dialogue.prompt import MEMORY_HEADER

pytestmark = pytest.mark.integration

FACT = "My secret password is pineapple."


def chat(cmd: list[str], env: dict[str, str], player: str, text: str) -> subprocess.CompletedProcess[str]:
    # a generous recall budget: this test is about what is recalled, on a machine that may be busy
    env = {
        **env,
        "LLMASOS_LLM__MAX_NEW_TOKENS": "12",
        "LLMASOS_LLM__TEMPERATURE": "0",
        "LLMASOS_MEMORY__RECALL_BUDGET_MS": "10000",
    }
    return subprocess.run(
        [*cmd, "chat", "--character", "blacksmith", "--player", player, "--show-prompt"],
        input=text,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def memory_section(stderr: str) -> str:
    """The recalled memories of the (last) prompt printed by --show-prompt, or "" when there are none."""
    prompt = stderr.rsplit("--- system\n", 1)[-1].split("--- end of prompt", 1)[0]
    if MEMORY_HEADER not in prompt:
        return ""
    return prompt.split(MEMORY_HEADER, 1)[1].split("\n\n", 1)[0]


def test_a_fact_told_in_one_process_is_recalled_in_the_next(cli_env: dict[str, str], llmasos_cmd: list[str]) -> None:
    first = chat(llmasos_cmd, cli_env, "alice", FACT + "\n")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Brom Ironhand: ") and len(lines[0]) > len("Brom Ironhand: ")
    assert "--- end of prompt" in first.stderr and memory_section(first.stderr) == ""  # nothing known yet

    search = subprocess.run(
        [*llmasos_cmd, "memory", "search", "what is the password", "--character", "blacksmith", "--player", "alice"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert search.returncode == 0, search.stderr
    assert "pineapple" in search.stdout

    again = chat(llmasos_cmd, cli_env, "alice", "Do you remember my password?\n")
    assert again.returncode == 0, again.stderr
    assert f"The player said: {FACT}" in memory_section(again.stderr)
    assert len(again.stdout.splitlines()) == 1

    other = chat(llmasos_cmd, cli_env, "bob", "Do you remember my password?\n")
    assert other.returncode == 0, other.stderr
    assert "--- end of prompt" in other.stderr
    assert "pineapple" not in other.stderr and "pineapple" not in other.stdout


def test_unknown_character_is_a_clear_error(cli_env: dict[str, str], llmasos_cmd: list[str]) -> None:
    out = subprocess.run(
        [*llmasos_cmd, "chat", "--character", "nobody", "--player", "p"],
        input="",
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "no character 'nobody'" in out.stderr and "blacksmith" in out.stderr
