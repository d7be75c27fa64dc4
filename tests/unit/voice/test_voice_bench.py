"""The voice benchmark's report and clip discovery (no model is run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.bench.voice import CLIPS, _clips, _markdown
from llmasos.errors import ConfigError
from voice.audio import float_to_s16
from voice.audiofile import write_wav
from voice.testing import tone

pytestmark = pytest.mark.unit


def test_clips_are_audio_with_transcripts(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", float_to_s16(tone(0.5)), 16_000)
    (tmp_path / "a.txt").write_text("hello\n")
    write_wav(tmp_path / "no_text.wav", float_to_s16(tone(0.5)), 16_000)
    (name, audio, text), *rest = _clips(tmp_path)
    assert (name, len(audio), text, rest) == ("a.wav", 8_000, "hello", [])
    with pytest.raises(ConfigError, match="no benchmark clips"):
        _clips(tmp_path / "empty")


def test_the_shipped_clips_are_found() -> None:
    names = [n for n, _, _ in _clips(CLIPS)]
    assert "jfk.flac" in names and len(names) == 6


def test_markdown_table() -> None:
    asr = {
        "model": "tiny.en",
        "device": "cpu",
        "utterances": 18,
        "latency_p50_s": 0.8,
        "latency_p95_s": 0.9,
        "rtf_mean": 0.2,
        "partial_2s_p50_s": 0.6,
        "wer": 0.03,
    }
    result = {
        "machine": {"cpu": "CPU", "cores": 2, "python": "3.11"},
        "repeats": 3,
        "load_average": [1.0, 1.0, 1.0],
        "asr": [asr],
        "vad": {
            "frames": 10,
            "mean_ms_per_20ms_frame": 0.05,
            "p95_ms_per_20ms_frame": 0.08,
            "share_of_real_time": 0.0025,
        },
        "tts": {
            "sample_rate": 22_050,
            "replies": 9,
            "first_audio_p50_s": 0.2,
            "first_audio_p95_s": 0.3,
            "rtf_mean": 0.1,
        },
        "turns": {
            "model": "tiny.en",
            "min_silence_ms": 500,
            "utterances": 4,
            "speech_end_to_final_p50_s": 1.2,
            "speech_end_to_final_speculative_p50_s": 0.8,
            "speech_end_to_final_speculative_max_s": 0.9,
        },
    }
    text = _markdown(result)
    assert "| tiny.en | 30 s | cpu | 18 | 0.8 | 0.9 | 0.2 | 0.6 | 3.0% |" in text
    assert "| 10 frames | 0.05 ms | 0.08 ms | 0.25% |" in text
    assert "| 22050 Hz | 9 | 0.2 | 0.3 | 0.1 |" in text
    assert "| tiny.en, min silence 500 ms | 4 | 1.2 | 0.8 | 0.9 |" in text
