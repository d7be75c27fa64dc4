"""The endpointer on synthetic signals and scripted VAD probabilities (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from voice.endpoint import Endpointer, EndpointOptions
from voice.errors import AudioFormatError
from voice.testing import WINDOW, WINDOW_S, EnergyVADStream, ScriptedVADStream, silence, speech_like, windows
from voice.types import SpeechDropped, SpeechOnset, SpeechPaused, SpeechResumed, SpeechStarted, Utterance

pytestmark = pytest.mark.unit


def _run(signal: np.ndarray, options: EndpointOptions | None = None, chunk: int = 320) -> list[object]:
    ep = Endpointer(EnergyVADStream(), options or EndpointOptions())
    events: list[object] = []
    for i in range(0, len(signal), chunk):  # 20 ms at 16 kHz, not a multiple of the VAD window
        events.extend(ep.push(signal[i : i + chunk]))
    events.extend(ep.flush())
    return events


def _utterances(events: list[object]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


def test_silence_gives_nothing() -> None:
    assert _run(silence(5.0)) == []


def test_one_burst_is_one_utterance_with_pre_roll() -> None:
    signal = np.concatenate([silence(1.0), speech_like(1.5), silence(1.5)])
    events = _run(signal)
    utts = _utterances(events)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechPaused, Utterance]
    onset = events[0]
    assert isinstance(onset, SpeechOnset) and onset.at_s == pytest.approx(1.0, abs=2 * WINDOW_S)  # the first sound
    (u,) = utts
    assert u.reason == "silence"
    assert u.start_s == pytest.approx(1.0 - 0.3, abs=2 * WINDOW_S)  # 300 ms pre-roll
    # the speech plus up to pre-roll of trailing silence, never the whole 1.5 s of silence
    assert 1.5 + 0.3 <= u.duration_s <= 1.5 + 0.3 + 0.3 + 2 * WINDOW_S
    assert np.abs(u.audio[: int(0.25 * 16000)]).max() == 0.0  # the pre-roll is the silence before


def test_natural_pause_does_not_split() -> None:
    # "Good morning. [0.36 s] Do you have any swords for sale?"
    signal = np.concatenate([silence(0.5), speech_like(0.8), silence(0.36), speech_like(1.6, seed=1), silence(1.0)])
    events = _run(signal)
    utts = _utterances(events)
    assert len(utts) == 1
    assert utts[0].duration_s > 0.8 + 0.36 + 1.6
    # the pause is announced, and so is the speech coming back (what was prepared for the pause is stale)
    kinds = [type(e) for e in events]
    assert kinds == [SpeechOnset, SpeechStarted, SpeechPaused, SpeechResumed, SpeechPaused, Utterance]
    paused, resumed = events[2], events[3]
    assert isinstance(paused, SpeechPaused) and isinstance(resumed, SpeechResumed)
    assert resumed.at_s - paused.at_s == pytest.approx(0.36, abs=0.15)


def test_long_pause_splits() -> None:
    signal = np.concatenate([speech_like(0.8), silence(0.8), speech_like(0.8, seed=1), silence(1.0)])
    utts = _utterances(_run(signal))
    assert [u.index for u in utts] == [0, 1]
    assert utts[1].start_s > utts[0].end_s - 0.3


def test_min_silence_is_configurable() -> None:
    signal = np.concatenate([speech_like(0.8), silence(0.36), speech_like(0.8, seed=1), silence(1.0)])
    assert len(_utterances(_run(signal, EndpointOptions(min_silence_ms=200)))) == 2
    assert len(_utterances(_run(signal, EndpointOptions(min_silence_ms=500)))) == 1


def test_short_click_is_dropped_and_never_announced() -> None:
    signal = np.concatenate([silence(0.5), speech_like(0.064), silence(1.0)])
    events = _run(signal, EndpointOptions(min_speech_ms=150))
    # its first sound is told (a reply may hold on it), then that it was nothing; never an utterance
    assert [type(e) for e in events] == [SpeechOnset, SpeechDropped]
    assert events[0].at_s == pytest.approx(0.5, abs=2 * WINDOW_S)  # type: ignore[attr-defined]
    assert events[1].at_s > events[0].at_s  # type: ignore[attr-defined]


def test_a_click_at_the_end_of_the_stream_is_dropped() -> None:
    events = _run(np.concatenate([silence(0.5), speech_like(0.064)]), EndpointOptions(min_speech_ms=150))
    assert [type(e) for e in events] == [SpeechOnset, SpeechDropped]


def test_long_speech_is_cut_and_nothing_is_dropped() -> None:
    speech = speech_like(45.0)
    signal = np.concatenate([silence(0.5), speech, silence(1.0)])
    utts = _utterances(_run(signal, EndpointOptions(max_utterance_s=10.0)))
    assert [u.reason for u in utts][:-1] == ["max_length"] * (len(utts) - 1)
    assert utts[-1].reason == "silence"
    assert len(utts) == 5
    assert all(u.duration_s <= 10.0 + 1e-9 for u in utts)
    # the pieces are contiguous: together they are the signal from the pre-roll on, sample for sample
    joined = np.concatenate([u.audio for u in utts])
    start = int(round(utts[0].start_s * 16000))
    assert np.array_equal(joined[: len(speech)], signal[start : start + len(speech)])
    for a, b in zip(utts, utts[1:], strict=False):
        assert b.start_s == pytest.approx(a.end_s)


def test_cut_falls_on_the_quietest_window() -> None:
    total = windows(12.0)
    script = [1.0] * total
    dip = windows(9.0)
    script[dip] = 0.4  # above neg_threshold: still speech, but the quietest point near the limit
    ep = Endpointer(ScriptedVADStream(script), EndpointOptions(max_utterance_s=10.0, pre_roll_ms=0))
    events = ep.push(np.zeros(total * WINDOW, dtype=np.float32))
    (first,) = _utterances(events)
    assert first.reason == "max_length"
    assert len(first.audio) == (dip + 1) * WINDOW


def test_end_of_stream_closes_an_open_utterance() -> None:
    ep = Endpointer(EnergyVADStream())
    events = ep.push(np.concatenate([silence(0.5), speech_like(1.0)]))
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted]
    assert ep.in_speech
    assert len(ep.current_audio()) > 16000
    (u,) = _utterances(ep.flush())
    assert u.reason == "end_of_stream"
    assert not ep.in_speech and len(ep.current_audio()) == 0


def test_speech_started_waits_for_min_speech() -> None:
    script = [0.0] * 10 + [0.9] * 20 + [0.0] * 30
    ep = Endpointer(ScriptedVADStream(script), EndpointOptions(min_speech_ms=150, pre_roll_ms=0))
    events: list[object] = []
    heard_at = announced_at = None
    for i in range(len(script)):
        events.extend(ep.push(np.zeros(WINDOW, dtype=np.float32)))
        if heard_at is None and events:
            heard_at = i
        if announced_at is None and any(isinstance(e, SpeechStarted) for e in events):
            announced_at = i
    assert isinstance(events[0], SpeechOnset) and isinstance(events[1], SpeechStarted)
    assert heard_at == 10 + windows(0.064) - 1  # the first onset_ms of sound is told at once ...
    assert announced_at == 10 + windows(0.15) - 1  # ... and speech once there is min_speech of it
    assert events[0].at_s == events[1].at_s == pytest.approx(10 * WINDOW_S)  # type: ignore[attr-defined]


def test_hysteresis_keeps_speech_through_a_dip() -> None:
    script = [0.0] * 5 + [0.9] * 10 + [0.4] * 20 + [0.9] * 10 + [0.0] * 30
    ep = Endpointer(ScriptedVADStream(script), EndpointOptions(min_silence_ms=300))
    events = ep.push(np.zeros(len(script) * WINDOW, dtype=np.float32))
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechPaused, Utterance]


def test_rejects_wrong_sample_type() -> None:
    ep = Endpointer(EnergyVADStream())
    with pytest.raises(AudioFormatError):
        ep.push(np.zeros(512, dtype=np.int16))  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError):
        ep.push(np.zeros((512, 2), dtype=np.float32))


def test_paused_while_silent_inside_an_utterance() -> None:
    ep = Endpointer(EnergyVADStream())
    ep.push(speech_like(1.0))
    assert ep.in_speech and not ep.paused
    ep.push(silence(0.2))
    assert ep.in_speech and ep.paused
    ep.push(speech_like(0.5))
    assert not ep.paused
    assert ep.utterance_index == 0
    ep.push(silence(1.0))
    assert not ep.in_speech and not ep.paused and ep.utterance_index == 1
