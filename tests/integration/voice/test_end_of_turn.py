"""Smart Turn v3.2 (the packaged end-of-turn model) with the real Silero VAD and endpointer, on Piper's voice: a
finished question ends soon after its last word; a pause that sounds unfinished waits for the rest, where
silence alone would have cut the turn in two."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from llmasos.models import ModelStore, Role, get_spec
from llmasos.settings import Settings
from llmasos.voice_factory import endpoint_options, load_turn
from voice.endpoint import Endpointer, EndpointOptions
from voice.smart_turn import SmartTurn
from voice.types import Samples, TurnChecked, TurnDetector, Utterance
from voice.vad import SileroVAD

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def turn(voice_settings: Settings, store: ModelStore) -> SmartTurn:
    smart = voice_settings.model_copy(
        update={"endpoint": voice_settings.endpoint.model_copy(update={"end_of_turn": "smart_turn"})}
    )
    model = load_turn(smart, store)
    assert model is not None
    return model


def _gap(seconds: float) -> Samples:
    return np.zeros(int(round(seconds * 16_000)), dtype=np.float32)


def _endpoint(vad: SileroVAD, signal: Samples, options: EndpointOptions, turn: TurnDetector | None) -> list[object]:
    ep = Endpointer(vad.open(), options, turn)
    events: list[object] = []
    for i in range(0, len(signal), 320):
        events.extend(ep.push(signal[i : i + 320]))
    return events + list(ep.flush())


def test_the_model_is_the_pinned_file(store: ModelStore) -> None:
    spec = get_spec("smart-turn-v3.2")
    assert spec.role is Role.TURN and spec.license == "BSD-2-Clause"
    verified = store.verify(spec)
    assert verified.path.name == "smart-turn-v3.2-cpu.onnx"
    assert verified.hashes == (("smart-turn-v3.2-cpu.onnx", spec.files[0].sha256),)


def test_a_finished_question_ends_soon_after_its_last_word(
    vad: SileroVAD, voice_settings: Settings, turn: SmartTurn, speak: Callable[[str], Samples]
) -> None:
    signal = np.concatenate([_gap(0.5), speak("Do you have any swords for sale?"), _gap(2.0)])
    events = _endpoint(vad, signal, endpoint_options(voice_settings), turn)  # the turn options apply either way
    (check,) = [e for e in events if isinstance(e, TurnChecked)]
    (u,) = [e for e in events if isinstance(e, Utterance)]
    assert check.complete and u.verdict is not None and u.verdict.probability > 0.5
    assert u.speech_end_s is not None
    assert u.end_s - u.speech_end_s < 0.3  # Silero's end of speech plus the 200 ms check, not 500 ms of silence


def test_a_pause_that_sounds_unfinished_waits_for_the_rest(
    vad: SileroVAD, voice_settings: Settings, turn: SmartTurn, speak: Callable[[str], Samples]
) -> None:
    signal = np.concatenate(
        [_gap(0.5), speak("I was wondering,"), _gap(0.7), speak("if you could mend my shield."), _gap(2.0)]
    )
    options = endpoint_options(voice_settings)
    by_silence = [e for e in _endpoint(vad, signal, options, None) if isinstance(e, Utterance)]
    assert len(by_silence) == 2  # 500 ms of silence alone cuts it after "wondering"
    events = _endpoint(vad, signal, options, turn)
    checks = [e for e in events if isinstance(e, TurnChecked)]
    assert len(checks) == 2 and not checks[0].complete  # "I was wondering," sounds unfinished
    (u,) = [e for e in events if isinstance(e, Utterance)]
    assert u.duration_s > 2.0
    assert u.speech_end_s is not None
    # the end: the model's (complete), or the longer silence (the model heard the whole turn as unfinished)
    assert u.end_s - u.speech_end_s < 0.3 if checks[1].complete else u.verdict is None


def test_silence_settings_load_no_model(voice_settings: Settings, store: ModelStore) -> None:
    silence = voice_settings.model_copy(
        update={"endpoint": voice_settings.endpoint.model_copy(update={"end_of_turn": "silence"})}
    )
    assert load_turn(silence, store) is None
