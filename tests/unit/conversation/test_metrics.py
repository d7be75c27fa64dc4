"""Stage times from a turn's timeline: the critical path from the end of speech to the first reply audio."""

from __future__ import annotations

import pytest

from llmasos.metrics import Metrics, stage_seconds

pytestmark = pytest.mark.unit

SEQUENTIAL = {
    "speech_end": 10.0,
    "endpoint": 10.5,
    "asr_final": 10.75,
    "recall_done": 10.8,
    "llm_first_token": 11.0,
    "llm_first_sentence": 11.3,
    "tts_first_audio": 11.5,
    "first_audio_sent": 11.52,
}


def test_sequential_stages_are_the_differences_and_add_up() -> None:
    s = stage_seconds(SEQUENTIAL)
    assert s["endpoint_wait"] == pytest.approx(0.5)
    assert s["asr"] == pytest.approx(0.25)
    assert s["llm_first_sentence"] == pytest.approx(0.5)
    assert s["llm_first_token"] == pytest.approx(0.2)  # beside the chain, inside llm_first_sentence
    chain = ("endpoint_wait", "asr", "recall", "llm_first_sentence", "tts_first_audio", "send")
    assert sum(s[k] for k in chain) == pytest.approx(s["voice_to_voice"]) == pytest.approx(1.52)


def test_work_done_during_the_endpointing_silence_adds_nothing() -> None:
    # the reply was prepared from a speculative transcript while the silence was still being timed
    marks = {
        "speech_end": 0.0,
        "asr_final": 0.3,
        "recall_done": 0.33,
        "llm_first_sentence": 0.45,
        "endpoint": 0.5,
        "tts_first_audio": 0.7,
        "first_audio_sent": 0.72,
    }
    s = stage_seconds(marks)
    assert s["endpoint_wait"] == pytest.approx(0.5)
    assert s["asr"] == s["recall"] == s["llm_first_sentence"] == 0.0
    assert s["tts_first_audio"] == pytest.approx(0.2)
    assert s["voice_to_voice"] == pytest.approx(0.72)


def test_a_missing_mark_ends_the_chain_and_units_convert() -> None:
    partial = {k: v for k, v in SEQUENTIAL.items() if k != "first_audio_sent"}
    s = stage_seconds(partial)
    assert "send" not in s and "voice_to_voice" not in s and "tts_first_audio" in s
    assert stage_seconds({"endpoint": 1.0}) == {}
    ms = stage_seconds({k: v * 1000 for k, v in SEQUENTIAL.items()}, unit=0.001)
    assert ms["voice_to_voice"] == pytest.approx(1.52)


def test_prometheus_export_has_every_stage_and_outcome() -> None:
    m = Metrics()
    m.turn_finished(SEQUENTIAL, "done")
    m.error("memory_recall_timeout")
    text = m.render().decode()
    for stage in ("endpoint_wait", "asr", "llm_first_token", "voice_to_voice"):
        assert f'llmasos_turn_stage_seconds_count{{stage="{stage}"}} 1.0' in text
    assert 'llmasos_turns_total{outcome="done"} 1.0' in text
    assert 'llmasos_errors_total{kind="memory_recall_timeout"} 1.0' in text
    assert 'llmasos_errors_total{kind="memory_recall_error"} 0.0' in text  # degraded recall: both kinds exported
