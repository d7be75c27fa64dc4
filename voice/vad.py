"""Silero VAD v6 on onnxruntime, streaming: one shared model, one small state per session.

The model takes 512-sample windows of 16 kHz audio (32 ms) preceded by the last 64 samples of the previous
window, plus an LSTM state (h, c), and returns one speech probability per window.

The state is made fresh after ``quiet_reset_s`` (1 s) of quiet (every window below ``QUIET``). Carried through
a long silence it dulls the model to the speech that ends it: after 20-60 s of silence or room noise, the
first word of Piper's "Cat, shall we go to the market?" scored 0.34-0.48 (0.84 after 1 s), under the 0.5 that
starts speech, and a short first word followed by a pause longer than the pre-roll was lost ("Shall we go to
the market?"). Over 5 phrases x 4 silences (1-60 s) x 3 noise levels, the first word's best window scored
0.33 at worst (6 of 60 below 0.5); with the reset, 0.70 at worst (none below), and a minute of white noise
at -54 to -34 dBFS still scores at most 0.19.
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
QUIET = 0.15  # a window below this is quiet (for the state's reset; the detector's thresholds are its own)


class SileroVAD:
    """The loaded model; thread-safe (onnxruntime sessions are), shared by every session."""

    sample_rate = 16_000

    def __init__(self, session: onnxruntime.InferenceSession, quiet_reset_s: float = 1.0) -> None:
        self._session = session
        self.quiet_reset_s = quiet_reset_s

    @classmethod
    def load(cls, path: Path, quiet_reset_s: float = 1.0) -> SileroVAD:
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            session = onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(path, f"cannot load the VAD model {path}: {exc}") from None
        return cls(session, quiet_reset_s)

    def open(self) -> SileroVADStream:
        return SileroVADStream(self._session, self.quiet_reset_s)


class SileroVADStream:
    """One session's VAD state: buffers partial windows, carries context and LSTM state across calls; the LSTM
    state is made fresh after ``quiet_reset_s`` of quiet windows (0: never)."""

    window_samples = WINDOW

    def __init__(self, session: onnxruntime.InferenceSession, quiet_reset_s: float = 1.0) -> None:
        self._session = session
        self._reset_after = int(round(quiet_reset_s * SileroVAD.sample_rate / WINDOW)) if quiet_reset_s > 0 else 0
        self.reset()

    def reset(self) -> None:
        self._fresh_state()
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def _fresh_state(self) -> None:
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._quiet = 0

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
            self._quiet = self._quiet + 1 if out[i] < QUIET else 0
            if self._reset_after and self._quiet >= self._reset_after:
                self._fresh_state()  # the context (the last samples heard) stays: it is the audio, not the state
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
