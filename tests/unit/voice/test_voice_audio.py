"""Sample types, channel mixing, streaming resampling and framing on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from voice.audio import (
    Framer,
    InboundConverter,
    OutboundFramer,
    Resampler,
    check_format,
    float_to_s16,
    resample,
    s16_to_float,
    to_mono,
)
from voice.errors import AudioFormatError
from voice.testing import tone
from voice.types import AudioFrame

pytestmark = pytest.mark.unit


def _peak_hz(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[int(np.argmax(spectrum))])


def test_s16_float_round_trip() -> None:
    pcm = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    f = s16_to_float(pcm)
    assert f.dtype == np.float32 and f.min() == -1.0 and f.max() < 1.0
    assert np.abs(float_to_s16(f).astype(int) - pcm.astype(int)).max() <= 1
    assert float_to_s16(np.array([2.0, -2.0], dtype=np.float32)).tolist() == [32767, -32768]


def test_s16_to_float_rejects_other_types() -> None:
    with pytest.raises(AudioFormatError, match="int16"):
        s16_to_float(np.zeros(4, dtype=np.int32))  # type: ignore[arg-type]


def test_to_mono_averages_channels() -> None:
    stereo = np.stack([np.ones(4, np.float32), np.zeros(4, np.float32)], axis=1)
    assert to_mono(stereo).tolist() == [0.5] * 4
    with pytest.raises(AudioFormatError):
        to_mono(np.zeros((2, 2, 2), np.float32))


@pytest.mark.parametrize(("src", "dst"), [(48_000, 16_000), (22_050, 48_000), (44_100, 16_000), (16_000, 16_000)])
def test_resample_keeps_pitch_and_duration(src: int, dst: int) -> None:
    signal = tone(1.0, freq=440.0, rate=src)
    out = resample(signal, src, dst)
    assert abs(len(out) - dst) <= 2
    assert _peak_hz(out, dst) == pytest.approx(440.0, abs=2.0)


def test_resampler_filters_instead_of_decimating() -> None:
    # 9 kHz is above 16 kHz's Nyquist: decimation folds it to 7 kHz, a real resampler removes it
    signal = tone(1.0, freq=9_000.0, rate=48_000)
    out = resample(signal, 48_000, 16_000)
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 0.01
    assert np.sqrt(np.mean(signal[::3] ** 2)) > 0.1  # what decimation would have kept


def test_streaming_resampler_matches_one_shot() -> None:
    signal = tone(1.0, freq=300.0, rate=48_000)
    r = Resampler(48_000, 16_000)
    pieces = [r.process(signal[i : i + 960]) for i in range(0, len(signal), 960)]
    streamed = np.concatenate([*pieces, r.flush()])
    whole = resample(signal, 48_000, 16_000)
    assert len(streamed) == len(whole)
    assert np.allclose(streamed, whole, atol=1e-4)


def test_inbound_converter_webrtc_frames_to_16k_mono() -> None:
    signal = float_to_s16(tone(1.0, freq=440.0, rate=48_000))
    conv = InboundConverter()
    out = []
    for i in range(0, len(signal), 960):  # 20 ms stereo frames, as aiortc delivers them
        mono = signal[i : i + 960]
        frame = AudioFrame(np.stack([mono, mono], axis=1), 48_000, 2)
        out.append(conv.convert(frame))
    joined = np.concatenate(out)
    assert joined.dtype == np.float32
    assert 16_000 - 400 <= len(joined) <= 16_000  # the resampler holds back a little latency
    assert _peak_hz(joined, 16_000) == pytest.approx(440.0, abs=3.0)


def test_inbound_converter_accepts_interleaved_pcm() -> None:
    interleaved = np.zeros(1920, dtype=np.int16)
    assert InboundConverter().convert(AudioFrame(interleaved, 48_000, 2)).ndim == 1  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="channels"):
        InboundConverter().convert(AudioFrame(np.zeros(1921, dtype=np.int16), 48_000, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize(("rate", "channels"), [(0, 1), (1_000, 1), (10_000_000, 1), (48_000, 0), (48_000, 99)])
def test_wrong_formats_are_clear_errors(rate: int, channels: int) -> None:
    with pytest.raises(AudioFormatError, match="unsupported"):
        check_format(rate, channels)
    frame = AudioFrame(np.zeros((960, max(channels, 1)), dtype=np.int16), rate, channels)
    with pytest.raises(AudioFormatError):
        InboundConverter().convert(frame)


def test_framer_cuts_exact_frames_and_pads_the_last() -> None:
    framer = Framer(48_000, frame_ms=20, channels=2)
    frames = framer.push(np.arange(2500, dtype=np.int16))
    assert [f.pcm.shape for f in frames] == [(960, 2), (960, 2)]
    assert framer.pending_samples == 580
    assert frames[1].pcm[0].tolist() == [960, 960]
    (last,) = framer.flush()
    assert last.pcm.shape == (960, 2)
    assert last.pcm[579, 0] == 2499 and last.pcm[580:].max() == 0
    assert framer.flush() == []


def test_framer_rejects_fractional_frames() -> None:
    with pytest.raises(AudioFormatError, match="whole number"):
        Framer(22_050, frame_ms=30)


def test_outbound_framer_tts_to_48k_20ms_frames() -> None:
    pcm = float_to_s16(tone(1.0, freq=440.0, rate=22_050))
    out = OutboundFramer(22_050)
    frames = []
    for i in range(0, len(pcm), 1000):
        frames.extend(out.push(pcm[i : i + 1000]))
    frames.extend(out.flush())
    assert all(f.sample_rate == 48_000 and f.pcm.shape == (960, 1) and f.pcm.dtype == np.int16 for f in frames)
    assert len(frames) == 50  # 1 s: 48,000 samples, the last frame padded
    joined = np.concatenate([f.pcm[:, 0] for f in frames]).astype(np.float32) / 32768
    assert _peak_hz(joined, 48_000) == pytest.approx(440.0, abs=2.0)


def test_outbound_framer_clear_drops_buffered_audio() -> None:
    out = OutboundFramer(22_050)
    out.push(float_to_s16(tone(0.05, rate=22_050)))
    out.clear()
    assert out.flush() == []
