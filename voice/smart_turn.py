"""Smart Turn v3 on onnxruntime: has the speaker finished their turn, judged from the sound of it.

Silence alone cannot tell "Good morning. [pause] Do you have any swords?" from "Good morning." said and done;
the intonation and rhythm of the last words can. Smart Turn (BSD-2-Clause, pipecat-ai's audio end-of-turn
model) reads the last 8 s of the turn as a Whisper log-mel spectrogram and answers the probability that the
turn is complete.

Input, as the model was trained: the last ``WINDOW_S`` of 16 kHz audio (zero-padded at the start when the
turn is shorter), normalised to zero mean and unit variance, as 80 Whisper log-mel bins x 800 frames
(``input_features``, batch 1). Output: one sigmoid probability.

Thread-safe (onnxruntime sessions are) and synchronous (~10-60 ms on one CPU core): shared by every session,
called off the event loop (the endpointer runs in a worker thread).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime
from faster_whisper.feature_extractor import FeatureExtractor

from voice.errors import AudioFormatError, ModelLoadError
from voice.types import ASR_RATE, Samples, TurnVerdict

WINDOW_S = 8
WINDOW = WINDOW_S * ASR_RATE  # samples the model reads
FRAMES = WINDOW // 160  # mel frames (hop 160)


def model_input(audio: Samples) -> np.ndarray:
    """The model's ``input_features`` for the turn ``audio`` (16 kHz mono float32): shape (1, 80, 800)."""
    if audio.ndim != 1:
        raise AudioFormatError(f"the end-of-turn model takes 16 kHz mono samples, got shape {audio.shape}")
    x = np.asarray(audio[-WINDOW:], dtype=np.float32)
    if len(x) < WINDOW:
        x = np.concatenate([np.zeros(WINDOW - len(x), dtype=np.float32), x])  # the past is silence
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    features = _extractor()(x, padding=0)
    return np.asarray(features[:, :FRAMES], dtype=np.float32)[None, :, :]


_EXTRACTOR: FeatureExtractor | None = None


def _extractor() -> FeatureExtractor:
    global _EXTRACTOR
    if _EXTRACTOR is None:  # a benign race: two threads may build one each (it holds constants only)
        _EXTRACTOR = FeatureExtractor(feature_size=80, chunk_length=WINDOW_S)
    return _EXTRACTOR


class SmartTurn:
    """The loaded model; shared by every session."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> SmartTurn:
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 4
        try:
            session = onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(path, f"cannot load the end-of-turn model {path}: {exc}") from None
        shape = session.get_inputs()[0].shape
        if len(shape) != 3 or shape[1] != 80:
            raise ModelLoadError(path, f"{path.name} is not a Smart Turn v3 model (its input has shape {shape})")
        return cls(session)

    def predict(self, audio: Samples) -> TurnVerdict:
        t0 = time.perf_counter()
        features = model_input(audio)
        out = self._session.run(None, {self._input: features})[0]
        return TurnVerdict(float(np.asarray(out).reshape(-1)[0]), time.perf_counter() - t0)


__all__ = ["FRAMES", "WINDOW", "WINDOW_S", "SmartTurn", "model_input"]
