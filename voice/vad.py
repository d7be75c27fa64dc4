"""Silero VAD v6 on onnxruntime, streaming: one shared model, one small state per session.

The model takes 512-sample windows of 16 kHz audio (32 ms) preceded by the last 64 samples of the previous
window, plus an LSTM state (h, c), and returns one speech probability per window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime

from voice.errors import AudioFormatError, ModelLoadError
from voice.types import Samples, VADEvent

WINDOW = 512
CONTEXT = 64
_STATE_SHAPE = (1, 1, 128)


class SileroVAD:
    """The loaded model; thread-safe (onnxruntime sessions are), shared by every session."""

    sample_rate = 16_000

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session

    @classmethod
    def load(cls, path: Path) -> SileroVAD:
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            session = onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(path, f"cannot load the VAD model {path}: {exc}") from None
        return cls(session)

    def open(self) -> SileroVADStream:
        return SileroVADStream(self._session)


class SileroVADStream:
    """One session's VAD state: buffers partial windows, carries context and LSTM state across calls."""

    window_samples = WINDOW

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def probabilities(self, samples: Samples) -> npt.NDArray[np.float32]:
        if samples.ndim != 1:
            raise AudioFormatError(f"the VAD takes 16 kHz mono samples, got shape {samples.shape}")
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = len(data) // WINDOW
        out = np.empty(n, dtype=np.float32)
        for i in range(n):
            window = data[i * WINDOW : (i + 1) * WINDOW]
            x = np.concatenate([self._context, window])[None, :]
            prob, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
            out[i] = float(np.asarray(prob).reshape(-1)[0])
            self._context = window[-CONTEXT:]
        self._pending = data[n * WINDOW :].copy()
        return out


@dataclass(frozen=True)
class DetectorOptions:
    """Hysteresis: speech starts at ``threshold`` and ends below ``neg_threshold`` (default threshold - 0.15)."""

    threshold: float = 0.5
    neg_threshold: float | None = None

    @property
    def low(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)


class SpeechDetector:
    """Turns per-window probabilities into speech_start / speech_end events (pure; no model)."""

    def __init__(self, window_s: float, options: DetectorOptions = DetectorOptions()) -> None:
        self._window_s = window_s
        self._options = options
        self._windows = 0
        self.speaking = False

    def update(self, probs: npt.NDArray[np.float32]) -> list[VADEvent]:
        events: list[VADEvent] = []
        for p in probs:
            at = self._windows * self._window_s
            self._windows += 1
            if not self.speaking and p >= self._options.threshold:
                self.speaking = True
                events.append(VADEvent("speech_start", at))
            elif self.speaking and p < self._options.low:
                self.speaking = False
                events.append(VADEvent("speech_end", at))
        return events
