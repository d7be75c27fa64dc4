"""The composition of voice/ from the settings tree (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.errors import ConfigError
from llmasos.models import ModelStore
from llmasos.settings import load_settings
from llmasos.voice_factory import endpoint_options, load_tts

pytestmark = pytest.mark.unit


def test_endpoint_options_follow_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        data_dir=str(tmp_path),
        endpoint={"min_silence_ms": 700, "pre_roll_ms": 200, "max_utterance_s": 12.0},
        vad={"threshold": 0.6, "neg_threshold": 0.3},
    )
    options = endpoint_options(settings)
    assert (options.min_silence_ms, options.pre_roll_ms, options.max_utterance_s) == (700, 200, 12.0)
    assert options.detector.threshold == 0.6 and options.detector.low == 0.3


def test_default_endpoint_does_not_split_natural_pauses(tmp_path: Path) -> None:
    assert endpoint_options(load_settings(None, data_dir=str(tmp_path))).min_silence_ms > 360


def test_unknown_voice_is_a_config_error(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path), tts={"voice": "nobody"})
    with pytest.raises(ConfigError, match="unknown voice 'nobody'"):
        load_tts(settings, ModelStore(tmp_path))
