"""The echo gate on real speech (LJ Speech clips): the character's voice coming back is silenced, the player
speaking over it is kept, and nothing changes while the character is quiet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voice.audiofile import decode_file
from voice.echo import EchoGate
from voice.types import Samples

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "data" / "voice"
BLOCK = 320  # 20 ms at 16 kHz


@pytest.fixture(scope="module")
def character() -> Samples:
    return decode_file(DATA / "LJ001-0006.wav")[: 16_000 * 5]  # what the server plays


@pytest.fixture(scope="module")
def player() -> Samples:
    return decode_file(DATA / "LJ001-0004.wav")[: 16_000 * 5]  # what the player says


def run(gate: EchoGate, sent: Samples, heard: Samples) -> Samples:
    """Stream both in 20 ms blocks, the reference first (it is sent before it can come back)."""
    out = []
    for i in range(0, min(len(sent), len(heard)) - BLOCK + 1, BLOCK):
        gate.reference(sent[i : i + BLOCK])
        out.append(gate.filter(heard[i : i + BLOCK]))
    return np.concatenate(out)


def echo_of(sent: Samples, delay_ms: int, gain_db: float, noise_db: float, seed: int = 0) -> Samples:
    delay = delay_ms * 16
    back = np.concatenate([np.zeros(delay, dtype=np.float32), sent[:-delay]]) * 10 ** (gain_db / 20)
    noise = np.random.default_rng(seed).standard_normal(len(sent)) * 10 ** (noise_db / 20)
    return (back + noise).astype(np.float32)


def energy(x: Samples) -> float:
    return float(np.dot(x, x))


@pytest.mark.parametrize("delay_ms", [40, 100, 350])
def test_the_characters_voice_coming_back_is_silenced(character: Samples, delay_ms: int) -> None:
    gate = EchoGate()
    heard = echo_of(character, delay_ms, gain_db=-6, noise_db=-50)
    out = run(gate, character, heard)
    assert gate.delay_ms == pytest.approx(delay_ms, abs=2)
    settled = slice(16_000, len(out))  # after the first delay search
    assert energy(out[settled]) < 0.05 * energy(heard[settled])


def test_the_player_speaking_over_it_is_kept(character: Samples, player: Samples) -> None:
    gate = EchoGate()
    run(gate, character[:16_000], echo_of(character[:16_000], 100, -6, -50))  # the delay is found first
    heard = echo_of(character, 100, -6, -50) + player
    out = run(gate, character, heard)
    voiced = np.abs(player[: len(out)]) > 0.02
    kept = out[voiced]
    # what is left is the player's voice, not the character's
    assert energy(kept) > 0.5 * energy(player[: len(out)][voiced])
    assert np.corrcoef(kept, player[: len(out)][voiced])[0, 1] > 0.9


def test_nothing_changes_while_the_character_is_quiet(player: Samples) -> None:
    gate = EchoGate()
    out = run(gate, np.zeros_like(player), player)
    assert np.array_equal(out, player[: len(out)])
    assert gate.echo_blocks == 0


def test_the_way_back_moving_by_a_frame_is_followed(character: Samples) -> None:
    """A playout buffer that grows by a frame moves the echo 20 ms later: the gate keeps silencing it."""
    gate = EchoGate()
    early, late = echo_of(character, 100, -6, -50), echo_of(character, 120, -6, -50, seed=1)
    cut = 16_000 * 2
    heard = np.concatenate([early[:cut], late[cut:]])
    out = run(gate, character, heard)
    after = slice(cut + 1_600, len(out))  # from 100 ms after the step
    assert energy(out[after]) < 0.05 * energy(heard[after])
    assert gate.delay_ms == pytest.approx(120, abs=2)


@pytest.mark.parametrize(("sent", "said"), [("LJ001-0004", "LJ001-0002"), ("LJ001-0006", "LJ001-0008")])
def test_the_players_words_just_after_the_characters_are_kept(sent: str, said: str) -> None:
    """The player answers as the character's last words end (before them, over them, or just after), in the
    same voice (the test client speaks with the character's voice; people sound alike): nothing the player says
    is taken for echo. Over one 160 ms window, a vowel of theirs next to one of the character's was."""
    character = decode_file(DATA / f"{sent}.wav")[: 16_000 * 3]
    player = decode_file(DATA / f"{said}.wav")[: 16_000 * 2]
    for gap_ms in range(-600, 200, 50):
        total = len(character) + 16_000 * 3
        reference, heard = np.zeros(total, np.float32), np.zeros(total, np.float32)
        reference[: len(character)] = character
        start = len(character) + gap_ms * 16
        heard[start : start + len(player)] = player
        gate = EchoGate()
        out = run(gate, reference, heard)
        assert gate.echo_blocks == 0, gap_ms
        assert np.array_equal(out, heard[: len(out)]), gap_ms
