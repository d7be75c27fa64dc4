"""Fakes of voice/'s protocols and synthetic signals, for tests here and in the packages that compose voice/.

ScriptedVADStream (probabilities from a script), EnergyVAD/EnergyVADStream (speech = loud windows), FakeASR
(records calls, can be held on a gate), FakeTTS (a tone per sentence), ScriptedTurnDetector (end-of-turn
verdicts from a script). No models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import numpy.typing as npt

from voice.audio import float_to_s16
from voice.sentences import SentenceSplitter
from voice.types import ASR_RATE, Samples, Transcript, TTSChunk, TurnVerdict

WINDOW = 512
WINDOW_S = WINDOW / ASR_RATE


class ScriptedVADStream:
    """Returns the scripted probability for each window in order (0.0 once the script runs out)."""

    window_samples = WINDOW

    def __init__(self, script: Sequence[float]) -> None:
        self._script = list(script)
        self._pos = 0
        self._pending = 0
        self.resets = 0

    def probabilities(self, samples: Samples) -> npt.NDArray[np.float32]:
        total = self._pending + len(samples)
        n, self._pending = divmod(total, WINDOW)
        out = [self._script[i] if i < len(self._script) else 0.0 for i in range(self._pos, self._pos + n)]
        self._pos += n
        return np.array(out, dtype=np.float32)

    def reset(self) -> None:
        self.resets += 1
        self._pending = 0


class EnergyVADStream:
    """Speech probability 1.0 for windows whose RMS exceeds ``level``: drives the endpointer from signals."""

    window_samples = WINDOW

    def __init__(self, level: float = 0.02) -> None:
        self._level = level
        self._pending = np.zeros(0, dtype=np.float32)

    def probabilities(self, samples: Samples) -> npt.NDArray[np.float32]:
        data = np.concatenate([self._pending, samples])
        n = len(data) // WINDOW
        self._pending = data[n * WINDOW :]
        windows = data[: n * WINDOW].reshape(n, WINDOW)
        rms = np.sqrt((windows.astype(np.float64) ** 2).mean(axis=1)) if n else np.zeros(0)
        return (rms > self._level).astype(np.float32)

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)


class EnergyVAD:
    def open(self) -> EnergyVADStream:
        return EnergyVADStream()


class ScriptedTurnDetector:
    """The scripted probability for each pause it is asked about, in order (``default`` once the script runs
    out); records the length of the audio of every call."""

    def __init__(self, script: Sequence[float] = (), default: float = 1.0) -> None:
        self._script = list(script)
        self._default = default
        self.calls: list[int] = []

    def predict(self, audio: Samples) -> TurnVerdict:
        n = len(self.calls)
        self.calls.append(len(audio))
        p = self._script[n] if n < len(self._script) else self._default
        return TurnVerdict(probability=p)


class FakeASR:
    """Records every call; the text says how long the audio was, so tests can check what was decoded."""

    def __init__(self, text: Callable[[Samples, bool], str] | None = None, gate: asyncio.Event | None = None) -> None:
        self.calls: list[tuple[int, bool]] = []
        self._text = text or (lambda audio, final: f"{len(audio)} samples")
        self._gate = gate

    async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript:
        self.calls.append((len(audio), final))
        if self._gate is not None:
            await self._gate.wait()
        return Transcript(self._text(audio, final), "en", final, audio_s=len(audio) / ASR_RATE)


class FakeTTS:
    """A 100 ms tone per word, one chunk per sentence; records the sentences it spoke."""

    sample_rate = 22_050

    def __init__(self) -> None:
        self.spoken: list[str] = []

    async def stream(self, text_chunks: AsyncIterator[str]) -> AsyncIterator[TTSChunk]:
        splitter = SentenceSplitter()
        start_ms = 0.0
        async for piece in text_chunks:
            for span in splitter.push(piece):
                chunk = self._chunk(span.text, span.start, span.end, start_ms)
                start_ms += chunk.duration_ms
                yield chunk
        for span in splitter.flush():
            yield self._chunk(span.text, span.start, span.end, start_ms)

    def _chunk(self, text: str, start: int, end: int, start_ms: float) -> TTSChunk:
        self.spoken.append(text)
        pcm = float_to_s16(tone(0.1 * len(text.split()), rate=self.sample_rate))
        return TTSChunk(pcm, self.sample_rate, text, start, end, start_ms)


def tone(seconds: float, freq: float = 220.0, amplitude: float = 0.3, rate: int = ASR_RATE) -> Samples:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, rate: int = ASR_RATE) -> Samples:
    return np.zeros(int(round(seconds * rate)), dtype=np.float32)


def speech_like(seconds: float, rate: int = ASR_RATE, seed: int = 0) -> Samples:
    """Syllable-rate (4 Hz) amplitude-modulated harmonics: bursts that never fall silent for a whole window."""
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(seed)
    carrier = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / k for k, f in enumerate((140, 280, 420), 1))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    signal: Samples = (0.2 * envelope * carrier).astype(np.float32)
    return signal


def windows(seconds: float) -> int:
    return int(round(seconds / WINDOW_S))
