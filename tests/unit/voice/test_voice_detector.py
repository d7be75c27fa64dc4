"""Speech/silence hysteresis on VAD probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from voice.types import VADEvent
from voice.vad import DetectorOptions, SpeechDetector

pytestmark = pytest.mark.unit


def test_hysteresis_events() -> None:
    det = SpeechDetector(0.032, DetectorOptions(threshold=0.5))
    probs = np.array([0.1, 0.6, 0.4, 0.36, 0.3, 0.2, 0.7], dtype=np.float32)
    events = det.update(probs)
    assert events == [
        VADEvent("speech_start", 0.032),
        VADEvent("speech_end", pytest.approx(4 * 0.032)),  # type: ignore[arg-type]
        VADEvent("speech_start", pytest.approx(6 * 0.032)),  # type: ignore[arg-type]
    ]
    assert det.speaking


def test_neg_threshold_can_be_set() -> None:
    assert DetectorOptions(0.5).low == pytest.approx(0.35)
    assert DetectorOptions(0.5, neg_threshold=0.2).low == 0.2
    det = SpeechDetector(0.032, DetectorOptions(0.5, neg_threshold=0.2))
    assert [e.kind for e in det.update(np.array([0.9, 0.3, 0.1], dtype=np.float32))] == ["speech_start", "speech_end"]
