"""Audio conversions: sample types, channel mixing, streaming resampling (soxr) and fixed-size framing.

Inbound, WebRTC gives 48 kHz stereo int16 in 20 ms frames and VAD/ASR want 16 kHz mono float32
(:class:`InboundConverter`). Outbound, TTS gives 22,050 Hz mono and the transport wants 48 kHz 20 ms int16
frames (:class:`OutboundFramer`). Both keep the resampler's state across frames, so the stream has no seams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from voice.errors import AudioFormatError
from voice.types import ASR_RATE, PCM, AudioFrame, Samples

MIN_RATE = 4_000
MAX_RATE = 384_000
MAX_CHANNELS = 8


def check_format(sample_rate: int, channels: int) -> None:
    """Raise AudioFormatError unless the rate and channel count are plausible for speech."""
    if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioFormatError(f"unsupported sample rate {sample_rate!r} Hz: expected {MIN_RATE}..{MAX_RATE} Hz")
    if not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"unsupported channel count {channels!r}: expected 1..{MAX_CHANNELS}")


def s16_to_float(pcm: npt.NDArray[np.int16]) -> Samples:
    if pcm.dtype != np.int16:
        raise AudioFormatError(f"expected int16 PCM, got {pcm.dtype}")
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def float_to_s16(samples: npt.NDArray[np.floating[Any]]) -> PCM:
    out: PCM = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype(np.int16)
    return out


def to_mono(samples: Samples) -> Samples:
    """(n,) stays; (n, channels) is averaged."""
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioFormatError(f"expected (samples,) or (samples, channels), got shape {samples.shape}")
    mono: Samples = samples.mean(axis=1, dtype=np.float32)
    return mono


class Resampler:
    """A streaming mono float32 resampler; state is kept between calls. ``flush()`` ends the stream."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        check_format(in_rate, 1)
        check_format(out_rate, 1)
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._quality = quality
        self._stream: soxr.ResampleStream | None = None
        self._reset()

    def _reset(self) -> None:
        self._stream = (
            None
            if self.in_rate == self.out_rate
            else soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality=self._quality)
        )

    def process(self, samples: Samples) -> Samples:
        if samples.ndim != 1:
            raise AudioFormatError(f"the resampler takes mono samples, got shape {samples.shape}")
        x = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return x
        return np.asarray(self._stream.resample_chunk(x), dtype=np.float32)

    def flush(self) -> Samples:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out = np.asarray(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)
        self._reset()
        return out


def resample(samples: Samples, in_rate: int, out_rate: int) -> Samples:
    """Resample a whole mono signal."""
    if in_rate == out_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    r = Resampler(in_rate, out_rate)
    return np.concatenate([r.process(samples), r.flush()])


class InboundConverter:
    """AudioFrames (any rate, any channels, int16) to 16 kHz mono float32, as a continuous stream.

    A change of rate or channel count mid-stream restarts the resampler (the transport renegotiated).
    """

    def __init__(self, out_rate: int = ASR_RATE) -> None:
        self.out_rate = out_rate
        self._resampler: Resampler | None = None
        self._channels = 0

    def convert(self, frame: AudioFrame) -> Samples:
        check_format(frame.sample_rate, frame.channels)
        pcm = frame.pcm
        if pcm.ndim == 1:
            if len(pcm) % frame.channels:
                raise AudioFormatError(f"{len(pcm)} interleaved samples do not divide into {frame.channels} channels")
            pcm = pcm.reshape(-1, frame.channels)
        if pcm.ndim != 2 or pcm.shape[1] != frame.channels:
            raise AudioFormatError(f"frame PCM has shape {frame.pcm.shape}, expected (samples, {frame.channels})")
        mono = to_mono(s16_to_float(pcm))
        r = self._resampler
        if r is None or r.in_rate != frame.sample_rate or self._channels != frame.channels:
            r = self._resampler = Resampler(frame.sample_rate, self.out_rate)
            self._channels = frame.channels
        return r.process(mono)


class Framer:
    """Cuts a mono int16 stream into frames of exactly ``frame_ms``; ``flush()`` pads the last with silence."""

    def __init__(self, sample_rate: int, frame_ms: int = 20, channels: int = 1) -> None:
        check_format(sample_rate, channels)
        if (sample_rate * frame_ms) % 1000:
            raise AudioFormatError(f"{frame_ms} ms is not a whole number of samples at {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_samples = sample_rate * frame_ms // 1000
        self._pending = np.zeros(0, dtype=np.int16)

    @property
    def pending_samples(self) -> int:
        return len(self._pending)

    def push(self, pcm: PCM) -> list[AudioFrame]:
        data = np.concatenate([self._pending, pcm.astype(np.int16, copy=False)])
        n = len(data) // self.frame_samples
        frames = [self._frame(data[i * self.frame_samples : (i + 1) * self.frame_samples]) for i in range(n)]
        self._pending = data[n * self.frame_samples :].copy()
        return frames

    def flush(self) -> list[AudioFrame]:
        if not len(self._pending):
            return []
        pad = np.zeros(self.frame_samples - len(self._pending), dtype=np.int16)
        frame = self._frame(np.concatenate([self._pending, pad]))
        self._pending = np.zeros(0, dtype=np.int16)
        return [frame]

    def clear(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)

    def _frame(self, mono: PCM) -> AudioFrame:
        pcm = np.repeat(mono[:, None], self.channels, axis=1) if self.channels > 1 else mono[:, None]
        return AudioFrame(np.ascontiguousarray(pcm), self.sample_rate, self.channels)


class OutboundFramer:
    """TTS output (mono int16 at its own rate) to transport frames: 48 kHz, 20 ms, int16, 1 or 2 channels."""

    def __init__(self, in_rate: int, out_rate: int = 48_000, frame_ms: int = 20, channels: int = 1) -> None:
        self._resampler = Resampler(in_rate, out_rate)
        self._framer = Framer(out_rate, frame_ms, channels)

    def push(self, pcm: PCM) -> list[AudioFrame]:
        return self._framer.push(float_to_s16(self._resampler.process(s16_to_float(pcm))))

    def flush(self) -> list[AudioFrame]:
        """End of a reply: drain the resampler and pad the last frame."""
        frames = self._framer.push(float_to_s16(self._resampler.flush()))
        return frames + self._framer.flush()

    def clear(self) -> None:
        """Barge-in: drop what is buffered."""
        self._resampler.flush()
        self._framer.clear()
