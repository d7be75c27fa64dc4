"""Whisper on the packaged models and real human speech."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from llmasos.models import ModelStore
from llmasos.settings import Settings
from llmasos.voice_factory import load_asr
from voice.asr import WhisperASR
from voice.errors import AudioFormatError, EmptyAudioError
from voice.types import Samples
from voice.wer import wer

pytestmark = pytest.mark.integration


async def test_tiny_en_on_jfk(asr: WhisperASR, jfk: Samples, jfk_text: str) -> None:
    t = await asr.transcribe(jfk)
    assert wer(jfk_text, t.text) <= 0.05, t.text
    assert t.final and t.language == "en"
    assert len(t.words) == len(jfk_text.split())
    starts = [w.start_s for w in t.words]
    assert starts == sorted(starts) and 0.0 <= starts[0] and t.words[-1].end_s <= 11.0 + 0.1
    assert t.audio_s == pytest.approx(11.0, abs=0.01)


async def test_partial_is_a_cheap_decode(asr: WhisperASR, jfk: Samples) -> None:
    t = await asr.transcribe(jfk[: 16_000 * 4], final=False)
    assert not t.final and t.words == ()
    assert "fellow americans" in t.text.lower()


async def test_lj_speech_clips(asr: WhisperASR, lj_clips: list[tuple[Samples, str]]) -> None:
    refs, hyps = [], []
    for audio, text in lj_clips:
        refs.append(text)
        hyps.append((await asr.transcribe(audio)).text)
    assert wer(" ".join(refs), " ".join(hyps)) <= 0.10, hyps


async def test_sessions_share_the_model_and_the_loop_stays_free(asr: WhisperASR, jfk: Samples, jfk_text: str) -> None:
    ticks = 0
    longest = 0.0

    async def ticker(done: asyncio.Event) -> None:
        nonlocal ticks, longest
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            longest, last, ticks = max(longest, now - last), now, ticks + 1

    done = asyncio.Event()
    tick_task = asyncio.create_task(ticker(done))
    results = await asyncio.gather(*(asr.transcribe(jfk) for _ in range(3)))
    done.set()
    await tick_task
    assert all(wer(jfk_text, r.text) <= 0.05 for r in results)
    assert ticks > 10  # the loop ran while three decodes queued on the one worker
    assert longest < 0.5, f"the event loop was blocked for {longest:.2f} s"


async def test_base_multilingual(voice_settings: Settings, store: ModelStore, jfk: Samples, jfk_text: str) -> None:
    base = load_asr(voice_settings, store, "base")
    try:
        assert base.multilingual
        t = await base.transcribe(jfk)
    finally:
        base.close()
    assert t.language == "en"
    assert wer(jfk_text, t.text) <= 0.05, t.text


async def test_bad_input_is_a_clear_error(asr: WhisperASR) -> None:
    with pytest.raises(EmptyAudioError):
        await asr.transcribe(np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioFormatError, match="float32"):
        await asr.transcribe(np.zeros(16_000, dtype=np.int16))  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="mono"):
        await asr.transcribe(np.zeros((16_000, 2), dtype=np.float32))


@pytest.fixture(scope="module")
def fitted(voice_settings: Settings, store: ModelStore) -> Iterator[WhisperASR]:
    """The conversation's recogniser: no word timings, a window fitted to each utterance (the defaults)."""
    assert voice_settings.asr.fitted_window and not voice_settings.asr.word_timestamps
    model = load_asr(voice_settings, store)
    yield model
    model.close()


async def test_a_fitted_window_hears_what_the_full_window_hears(
    fitted: WhisperASR, asr: WhisperASR, jfk: Samples, jfk_text: str, lj_clips: list[tuple[Samples, str]]
) -> None:
    refs, full, short = [], [], []
    for audio, text in [(jfk, jfk_text), *lj_clips]:
        t = await fitted.transcribe(audio)
        assert t.final and t.words == ()
        assert t.window_s < 30.0 and t.window_s >= len(audio) / 16_000, "the decode did not use a fitted window"
        refs.append(text)
        short.append(t.text)
        full.append((await asr.transcribe(audio)).text)
    assert wer(" ".join(refs), " ".join(short)) <= wer(" ".join(refs), " ".join(full)) + 0.02, short


async def test_a_fitted_window_hears_no_speech_in_silence_and_noise(fitted: WhisperASR) -> None:
    rng = np.random.default_rng(7)
    assert (await fitted.transcribe(np.zeros(16_000, dtype=np.float32))).text == ""
    noise = (rng.standard_normal(32_000) * 0.02).astype(np.float32)
    assert (await fitted.transcribe(noise)).text == ""


async def test_a_long_utterance_takes_the_full_window(fitted: WhisperASR, jfk: Samples, jfk_text: str) -> None:
    long = np.concatenate([jfk, jfk, jfk])  # 33 s: past what one fitted window holds
    t = await fitted.transcribe(long)
    assert t.window_s == 30.0
    assert wer(" ".join([jfk_text] * 3), t.text) <= 0.10, t.text
