"""Real packaged models, loaded once per session, and the human speech clips of tests/data/voice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llmasos.models import ModelStore
from llmasos.settings import Settings, load_settings
from llmasos.voice_factory import load_asr, load_tts, load_vad
from voice.asr import WhisperASR
from voice.audio import resample, s16_to_float
from voice.audiofile import decode_file
from voice.tts import PiperTTS, voiced_range
from voice.types import Samples
from voice.vad import SileroVAD

DATA = Path(__file__).resolve().parents[2] / "data" / "voice"
JFK_TEXT = (
    "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
)
LJ_CLIPS = ("LJ001-0002", "LJ001-0004", "LJ001-0006", "LJ001-0008", "LJ001-0013")


@pytest.fixture(scope="session")
def voice_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(None, data_dir=str(tmp_path_factory.mktemp("voice-data")))


@pytest.fixture(scope="session")
def store(voice_settings: Settings) -> ModelStore:
    return ModelStore(voice_settings.data_dir)


@pytest.fixture(scope="session")
def asr(voice_settings: Settings, store: ModelStore) -> Iterator[WhisperASR]:
    # with word timings (off by default: conversations do not use them; `transcribe --json` does)
    timed = voice_settings.model_copy(update={"asr": voice_settings.asr.model_copy(update={"word_timestamps": True})})
    model = load_asr(timed, store)
    yield model
    model.close()


@pytest.fixture(scope="session")
def vad(voice_settings: Settings, store: ModelStore) -> SileroVAD:
    return load_vad(voice_settings, store)


@pytest.fixture(scope="session")
def tts(voice_settings: Settings, store: ModelStore) -> Iterator[PiperTTS]:
    voice = load_tts(voice_settings, store)
    yield voice
    voice.close()


@pytest.fixture(scope="session")
def jfk() -> Samples:
    return decode_file(DATA / "jfk.flac")


@pytest.fixture(scope="session")
def jfk_text() -> str:
    return JFK_TEXT


@pytest.fixture(scope="session")
def lj_clips() -> list[tuple[Samples, str]]:
    """The five LJ Speech clips at 16 kHz with their transcripts."""
    return [(decode_file(DATA / f"{n}.wav"), (DATA / f"{n}.txt").read_text(encoding="utf-8").strip()) for n in LJ_CLIPS]


@pytest.fixture(scope="session")
def speak(tts: PiperTTS) -> Callable[[str], Samples]:
    """Piper's speech for a text at 16 kHz, trimmed to its voiced part."""

    def _speak(text: str) -> Samples:
        pcm = tts.synthesize_sync(text)
        first, last = voiced_range(pcm)
        return resample(s16_to_float(pcm[first:last]), tts.sample_rate, 16_000)

    return _speak
