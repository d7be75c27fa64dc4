"""Smart Turn's input is the Whisper feature extractor's, computed here without transformers at run time."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor

from voice.errors import AudioFormatError
from voice.smart_turn import FRAMES, WINDOW, model_input

pytestmark = pytest.mark.unit


def _reference(audio: np.ndarray) -> np.ndarray:
    """transformers' Whisper features on the last 8 s, zero-padded at the start and normalised."""
    x = audio[-WINDOW:]
    x = np.concatenate([np.zeros(WINDOW - len(x), dtype=np.float32), x])
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    fe = WhisperFeatureExtractor(chunk_length=8)
    out = fe(x, sampling_rate=16_000, return_tensors="np", do_normalize=False, padding="max_length", max_length=WINDOW)
    return np.asarray(out.input_features, dtype=np.float32)


@pytest.mark.parametrize("seconds", [0.4, 3.0, 8.0, 11.5])  # shorter than the window, exactly it, longer
def test_features_match_the_whisper_feature_extractor(seconds: float) -> None:
    rng = np.random.default_rng(int(seconds * 10))
    t = np.arange(int(seconds * 16_000)) / 16_000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    audio += (0.01 * rng.standard_normal(len(audio))).astype(np.float32)
    ours = model_input(audio)
    assert ours.shape == (1, 80, FRAMES) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, _reference(audio), atol=1e-4)


def test_stereo_is_refused() -> None:
    with pytest.raises(AudioFormatError, match="mono"):
        model_input(np.zeros((1600, 2), dtype=np.float32))
