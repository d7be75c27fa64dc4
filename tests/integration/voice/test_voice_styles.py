"""Two characters told apart by ear: one Piper voice with its own pace and pitch per character, still heard
right by Whisper."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voice.asr import WhisperASR
from voice.audio import resample, s16_to_float
from voice.tts import PiperTTS, voiced_range
from voice.types import VoiceStyle
from voice.wer import wer

pytestmark = pytest.mark.integration

TEXT = "Do you have any swords for sale? The blacksmith opens his shop at noon."


def _f0(pcm: npt.NDArray[np.int16], rate: int) -> float:
    """The median fundamental frequency of the voiced 40 ms frames (autocorrelation, 60-400 Hz)."""
    x = s16_to_float(pcm)
    n, out = int(0.04 * rate), []
    for start in range(0, len(x) - n, n):
        frame = x[start : start + n] - x[start : start + n].mean()
        if np.sqrt(np.mean(frame**2)) < 0.03:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = int(rate / 400), int(rate / 60)
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            out.append(rate / lag)
    return float(np.median(out))


def _voiced_s(voice: PiperTTS, pcm: npt.NDArray[np.int16]) -> float:
    first, last = voiced_range(pcm)
    return (last - first) / voice.sample_rate


def test_pitch_and_pace_of_a_styled_voice(tts: PiperTTS) -> None:
    high = tts.styled(VoiceStyle(rate=1.0, pitch=1.2))
    fast = tts.styled(VoiceStyle(rate=1.25, pitch=1.0))
    assert high.sample_rate == round(tts.sample_rate * 1.2)  # the audio is labelled faster: the pitch rises
    # Piper's synthesis is not deterministic (its noise): the median over three renderings of each
    ratios = [
        _f0(high.synthesize_sync(TEXT), high.sample_rate) / _f0(tts.synthesize_sync(TEXT), tts.sample_rate)
        for _ in range(3)
    ]
    f0_ratio = float(np.median(ratios))
    assert 1.08 < f0_ratio < 1.32, ratios
    plains = [_voiced_s(tts, tts.synthesize_sync(TEXT)) for _ in range(3)]
    pace = float(np.median([_voiced_s(high, high.synthesize_sync(TEXT)) for _ in range(3)]) / np.median(plains))
    assert 0.85 < pace < 1.15, pace  # the same pace: synthesis made up for the resampling
    speed = float(np.median(plains) / np.median([_voiced_s(fast, fast.synthesize_sync(TEXT)) for _ in range(3)]))
    assert 1.08 < speed < 1.45, speed
    assert tts.styled(VoiceStyle()).sample_rate == tts.sample_rate


@pytest.mark.parametrize("style", [VoiceStyle(1.05, 1.18), VoiceStyle(0.95, 0.85)])
def test_whisper_hears_a_styled_voice(tts: PiperTTS, asr: WhisperASR, style: VoiceStyle) -> None:
    voice = tts.styled(style)
    pcm = voice.synthesize_sync(TEXT)
    heard = asr.transcribe_sync(resample(s16_to_float(pcm), voice.sample_rate, 16_000), final=True).text
    assert wer(TEXT, heard) <= 0.15, heard


async def test_a_styled_view_shares_the_voice_and_closing_it_keeps_the_voice(tts: PiperTTS) -> None:
    view = tts.styled(VoiceStyle(1.0, 1.1))
    assert view.origin is tts
    view.close()  # the synthesis thread is the voice's: it goes on for the voice and the view
    assert len(await tts.synthesize("Still here.")) > 0 and len(await view.synthesize("Me too.")) > 0


def test_a_style_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="rate is 0.5-2.0 and pitch 0.7-1.4"):
        VoiceStyle(rate=3.0)


async def test_a_prompted_recogniser_hears_speech_and_not_its_prompt_in_silence(tts: PiperTTS, asr: WhisperASR) -> None:
    prompted = asr.with_prompt("Hilda, innkeeper, Brom Ironhand, blacksmith.")
    pcm = tts.synthesize_sync("Hilda, is there a room free tonight?")
    audio = resample(s16_to_float(pcm), tts.sample_rate, 16_000)
    heard = (await prompted.transcribe(audio)).text
    assert "Hilda" in heard and wer("Hilda, is there a room free tonight?", heard) <= 0.35, heard  # the name, spelt
    quiet = (np.random.default_rng(1).standard_normal(16_000) * 0.003).astype(np.float32)
    assert "hilda" not in prompted.transcribe_sync(quiet).text.lower()  # never the prompt's names out of noise
    prompted.close()  # a view: the model goes on
    assert (await asr.transcribe(audio)).text


def test_a_prompt_that_changes_is_read_at_each_decode(asr: WhisperASR) -> None:
    names = ["Hilda."]
    prompted = asr.with_prompt(lambda: names[-1])
    assert prompted.prompt == "Hilda."
    names.append("Hilda, Siobhan.")  # someone joined the room
    assert prompted.prompt == "Hilda, Siobhan."
    names.append("  ")
    assert prompted.prompt is None and asr.prompt is None
