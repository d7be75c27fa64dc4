"""The endpointer with an end-of-turn model (a scripted one): a pause judged complete ends the turn early, one
judged incomplete waits for more speech up to the longer silence."""

from __future__ import annotations

import numpy as np
import pytest

from voice.endpoint import Endpointer, EndpointOptions, TurnOptions
from voice.testing import WINDOW_S, EnergyVADStream, ScriptedTurnDetector, silence, speech_like
from voice.types import (
    ASR_RATE,
    SpeechDropped,
    SpeechOnset,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnChecked,
    TurnDetector,
    Utterance,
)

pytestmark = pytest.mark.unit

OPTIONS = EndpointOptions(turn=TurnOptions(check_ms=200, max_silence_ms=1000))


def _run(signal: np.ndarray, turn: TurnDetector, options: EndpointOptions = OPTIONS) -> list[object]:
    ep = Endpointer(EnergyVADStream(), options, turn)
    events: list[object] = []
    for i in range(0, len(signal), 320):
        events.extend(ep.push(signal[i : i + 320]))
    events.extend(ep.flush())
    return events


def _utterances(events: list[object]) -> list[Utterance]:
    return [e for e in events if isinstance(e, Utterance)]


def _checks(events: list[object]) -> list[TurnChecked]:
    return [e for e in events if isinstance(e, TurnChecked)]


def test_a_pause_judged_complete_ends_the_turn_after_the_short_silence() -> None:
    turn = ScriptedTurnDetector([0.9])
    signal = np.concatenate([silence(0.5), speech_like(1.2), silence(2.0)])
    events = _run(signal, turn)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechPaused, TurnChecked, Utterance]
    (check,) = _checks(events)
    (u,) = _utterances(events)
    assert check.silence_s == pytest.approx(0.2, abs=WINDOW_S)
    assert check.complete and u.verdict == check.verdict
    assert u.reason == "silence"
    # it ends 0.2 s after the speech, not 0.5 s (the silence-only end)
    assert u.speech_end_s == pytest.approx(0.5 + 1.2, abs=2 * WINDOW_S)
    assert u.end_s - u.speech_end_s == pytest.approx(0.2, abs=2 * WINDOW_S)
    assert check.at_s == pytest.approx(u.end_s, abs=WINDOW_S)
    # the model heard the whole turn so far, pre-roll and the pause included
    assert turn.calls == [len(u.audio)]


def test_a_pause_judged_incomplete_waits_and_the_speech_going_on_keeps_one_turn() -> None:
    # "Good morning. [0.36 s] Do you have any swords for sale?": the first pause sounds unfinished
    turn = ScriptedTurnDetector([0.1, 0.8])
    signal = np.concatenate([silence(0.5), speech_like(0.8), silence(0.36), speech_like(1.6, seed=1), silence(2.0)])
    events = _run(signal, turn)
    kinds = [type(e) for e in events]
    assert kinds == [
        SpeechOnset, SpeechStarted, SpeechPaused, TurnChecked, SpeechResumed, SpeechPaused, TurnChecked, Utterance
    ]  # fmt: skip
    first, second = _checks(events)
    assert not first.complete and second.complete
    (u,) = _utterances(events)
    assert u.duration_s > 0.8 + 0.36 + 1.6
    assert u.verdict == second.verdict
    assert turn.calls[1] > turn.calls[0]  # the second judgement heard more of the turn


def test_a_pause_judged_incomplete_ends_after_the_long_silence() -> None:
    turn = ScriptedTurnDetector([0.2])
    signal = np.concatenate([silence(0.5), speech_like(1.0), silence(2.5)])
    events = _run(signal, turn)
    (u,) = _utterances(events)
    assert len(_checks(events)) == 1  # asked once per pause
    assert u.verdict is None  # the silence ended it, not the model
    # the utterance keeps at most pre-roll of trailing silence; it ended after 1.0 s of it
    assert u.speech_end_s == pytest.approx(0.5 + 1.0, abs=2 * WINDOW_S)
    assert u.end_s - u.speech_end_s == pytest.approx(0.3, abs=2 * WINDOW_S)


def test_the_longer_silence_is_configurable() -> None:
    signal = np.concatenate([speech_like(0.8), silence(0.7), speech_like(0.8, seed=1), silence(2.0)])
    short = EndpointOptions(turn=TurnOptions(check_ms=200, max_silence_ms=500))
    assert len(_utterances(_run(signal, ScriptedTurnDetector([0.0, 1.0]), short))) == 2
    assert len(_utterances(_run(signal, ScriptedTurnDetector([0.0, 1.0]), OPTIONS))) == 1


def test_a_click_is_never_judged() -> None:
    turn = ScriptedTurnDetector()
    events = _run(np.concatenate([silence(0.5), speech_like(0.064), silence(2.0)]), turn)
    assert [type(e) for e in events] == [SpeechOnset, SpeechDropped]  # a sound, then nothing
    assert turn.calls == []


def test_without_a_model_silence_alone_ends_the_turn() -> None:
    signal = np.concatenate([silence(0.5), speech_like(1.0), silence(2.0)])
    ep = Endpointer(EnergyVADStream(), EndpointOptions(min_silence_ms=500))
    events = ep.push(signal) + ep.flush()
    (u,) = _utterances(events)
    assert not _checks(events) and u.verdict is None
    assert u.end_s - (u.speech_end_s or 0.0) == pytest.approx(0.3, abs=2 * WINDOW_S)  # pre-roll of the 0.5 s
    assert len(u.audio) == pytest.approx((u.end_s - u.start_s) * ASR_RATE, abs=1)


def test_the_threshold_is_the_endpointer_s() -> None:
    signal = np.concatenate([silence(0.5), speech_like(1.0), silence(2.0)])
    strict = EndpointOptions(turn=TurnOptions(check_ms=200, max_silence_ms=1000, threshold=0.8))
    (check,) = _checks(_run(signal, ScriptedTurnDetector([0.7]), strict))
    assert not check.complete and check.verdict.probability == 0.7
    (check,) = _checks(_run(signal, ScriptedTurnDetector([0.7]), OPTIONS))
    assert check.complete
