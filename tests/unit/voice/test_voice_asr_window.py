"""What the fitted Whisper window takes for a loop, and which window an utterance gets (the decodes themselves
are in the integration tests, on the real model)."""

from __future__ import annotations

import numpy as np
import pytest

from voice.asr import WhisperASR, WhisperOptions, WindowOptions, repeats
from voice.types import ASR_RATE


@pytest.mark.parametrize(
    "text",
    [
        "Can you repair my old ax? Can you repair my old ax? Can",
        "How much does I steal swords cost? How much does I steal swords cost?",
        "the old bridge the old bridge",
    ],
)
def test_a_phrase_said_twice_in_a_row_is_a_loop(text: str) -> None:
    assert repeats(text)


@pytest.mark.parametrize(
    "text",
    [
        "ask not what your country can do for you, ask what you can do for your country",
        "no, no, I said the forge",  # a word said twice is speech
        "very very good",
        "",
    ],
)
def test_speech_is_not_a_loop(text: str) -> None:
    assert not repeats(text)


class _Multilingual:
    class model:  # noqa: N801 - the shape of faster-whisper's WhisperModel.model
        is_multilingual = True


def _asr(options: WhisperOptions) -> WhisperASR:
    return WhisperASR(_Multilingual(), options, "test", "cpu")


def _seconds(s: float) -> np.ndarray:
    return np.zeros(int(s * ASR_RATE), dtype=np.float32)


def test_the_window_fits_the_utterance_in_steps() -> None:
    asr = _asr(WhisperOptions(language="en", word_timestamps=False, window=WindowOptions(min_window_s=8)))
    assert asr._window_s(_seconds(2.0)) == 8.0
    assert asr._window_s(_seconds(7.5)) == 10.0  # 7.5 s + 1 s margin, in steps of 2 s
    assert asr._window_s(_seconds(28.9)) == 30.0


def test_when_the_window_is_fitted() -> None:
    window = WindowOptions()
    assert _asr(WhisperOptions(language="en", word_timestamps=False, window=window))._fits(_seconds(3), True)
    # the language must be known (a multilingual model told nothing detects it on the full window)
    assert not _asr(WhisperOptions(language=None, word_timestamps=False, window=window))._fits(_seconds(3), True)
    # word timings come from faster-whisper's alignment; partials never have them
    timed = _asr(WhisperOptions(language="en", word_timestamps=True, window=window))
    assert not timed._fits(_seconds(3), True) and timed._fits(_seconds(3), False)
    assert not _asr(WhisperOptions(language="en", word_timestamps=False, window=window))._fits(_seconds(29.5), True)
    assert not _asr(WhisperOptions(language="en", word_timestamps=False))._fits(_seconds(3), True)
