"""The endpointer: VAD decisions (and an end-of-turn model's) into utterances.

An utterance opens when the VAD hears speech (with ``pre_roll`` of the audio before it) and survives pauses.
When it ends:

- with an end-of-turn model (a TurnDetector such as Smart Turn): after ``turn.check_ms`` of silence the model
  judges the turn so far (a TurnChecked event). Complete: the utterance ends at once. Incomplete: it waits for
  more speech, and ends only after ``turn.max_silence_ms`` of silence ("Good morning. [0.36 s] Do you have any
  swords for sale?" stays one turn, "Do you have any swords for sale?" ends 0.2 s after its last word).
- without one: after ``min_silence`` of silence, whatever was said.

The first speech window opens the utterance; ``onset`` of speech in it is told at once (SpeechOnset: the moment
to hold a reply's voice), ``min_speech`` of speech in total announces it (SpeechStarted). Bursts shorter than
that are dropped (coughs, clicks: SpeechDropped) and never announced. An utterance that reaches
``max_utterance`` is cut at its quietest window of the last ``cut_search`` and continues as the next piece: long
speech is transcribed piece by piece, never dropped.

Synchronous and deterministic (it runs the VAD stream, so call ``push`` off the event loop).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from voice.errors import AudioFormatError
from voice.types import (
    ASR_RATE,
    EndpointEvent,
    Samples,
    SpeechDropped,
    SpeechOnset,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnChecked,
    TurnDetector,
    TurnVerdict,
    Utterance,
    UtteranceReason,
    VADStream,
)
from voice.vad import DetectorOptions, SpeechDetector


@dataclass(frozen=True)
class TurnOptions:
    """When an end-of-turn model is asked, above which probability a turn is complete, and how long an
    utterance it judged incomplete may stay silent."""

    check_ms: int = 200
    max_silence_ms: int = 1000
    threshold: float = 0.5


@dataclass(frozen=True)
class EndpointOptions:
    min_silence_ms: int = 500  # the end without an end-of-turn model
    pre_roll_ms: int = 300
    min_speech_ms: int = 150
    onset_ms: int = 64  # this much speech is told at once (SpeechOnset), before min_speech_ms of it is speech
    max_utterance_s: float = 20.0
    cut_search_ms: int = 2000  # where to look for the quietest point when cutting a long utterance
    detector: DetectorOptions = DetectorOptions()
    turn: TurnOptions = TurnOptions()


class Endpointer:
    """Feed 16 kHz mono float32 of any chunk size; get SpeechOnset, SpeechStarted (or SpeechDropped),
    SpeechPaused, SpeechResumed, TurnChecked and Utterance events. ``turn``: the end-of-turn model (None:
    silence alone ends an utterance)."""

    def __init__(
        self, vad: VADStream, options: EndpointOptions = EndpointOptions(), turn: TurnDetector | None = None
    ) -> None:
        self._vad = vad
        self._opts = options
        self._turn = turn
        self._win = vad.window_samples
        self._win_s = self._win / ASR_RATE
        self._detector = SpeechDetector(self._win_s, options.detector)
        self._pad = self._windows(options.pre_roll_ms / 1000)  # pre-roll, and trailing silence kept
        self._pre_roll: deque[Samples] = deque(maxlen=self._pad)
        self._min_silence = max(1, self._windows(options.min_silence_ms / 1000))
        self._check = max(1, self._windows(options.turn.check_ms / 1000))
        self._max_silence = max(self._check, self._windows(options.turn.max_silence_ms / 1000))
        self._min_speech = self._windows(options.min_speech_ms / 1000)
        self._onset = max(1, min(self._windows(options.onset_ms / 1000), max(1, self._min_speech)))
        self._max_windows = max(2, self._windows(options.max_utterance_s))
        self._cut_search = max(1, min(self._windows(options.cut_search_ms / 1000), self._max_windows // 2))
        self._pending = np.zeros(0, dtype=np.float32)
        self._clock = 0  # windows seen
        self._index = 0
        self._open = False
        self._reset_utterance()

    def _windows(self, seconds: float) -> int:
        return int(round(seconds / self._win_s))

    def _reset_utterance(self) -> None:
        self._audio: list[Samples] = []
        self._probs: list[float] = []
        self._start_window = 0
        self._opened_at = 0  # the window the VAD first heard it in
        self._speech_windows = 0
        self._silence_windows = 0
        self._announced = False
        self._pause_announced = False
        self._verdict: TurnVerdict | None = None  # the end-of-turn model's verdict that completes the pause

    @property
    def in_speech(self) -> bool:
        """An announced utterance is open (the user is speaking or pausing)."""
        return self._open and self._announced

    @property
    def paused(self) -> bool:
        """An utterance is open and the VAD hears silence (it may end, or speech may resume)."""
        return self._open and self._silence_windows > 0

    @property
    def silence_s(self) -> float:
        """How long the open utterance has been silent (0 while speaking or when none is open)."""
        return self._silence_windows * self._win_s if self._open else 0.0

    @property
    def utterance_index(self) -> int:
        """The index the open (or next) utterance has."""
        return self._index

    @property
    def stream_s(self) -> float:
        return self._clock * self._win_s

    def current_audio(self) -> Samples:
        """The open utterance so far (for partial transcripts); empty when none is open."""
        return np.concatenate(self._audio) if self._audio else np.zeros(0, dtype=np.float32)

    def push(self, samples: Samples) -> list[EndpointEvent]:
        if samples.ndim != 1 or samples.dtype != np.float32:
            raise AudioFormatError(
                f"the endpointer takes 16 kHz mono float32, got {samples.dtype} of shape {samples.shape}"
            )
        data = np.concatenate([self._pending, samples])
        n = len(data) // self._win
        self._pending = data[n * self._win :].copy()
        events: list[EndpointEvent] = []
        if n == 0:
            return events
        probs = self._vad.probabilities(data[: n * self._win])
        if len(probs) != n:
            raise AudioFormatError(f"the VAD returned {len(probs)} probabilities for {n} windows")
        for i in range(n):
            self._step(data[i * self._win : (i + 1) * self._win], float(probs[i]), events)
        return events

    def flush(self) -> list[EndpointEvent]:
        """The input ended: close an open utterance (if it holds enough speech) and reset."""
        events: list[EndpointEvent] = []
        if self._open and self._speech_windows >= self._min_speech:
            self._emit(len(self._audio) - max(0, self._silence_windows - self._pad), "end_of_stream", events)
        elif self._open and self._speech_windows >= self._onset:  # its onset was told
            events.append(SpeechDropped(self._clock * self._win_s))
        self._open = False
        self._reset_utterance()
        self._pre_roll.clear()
        self._pending = np.zeros(0, dtype=np.float32)
        self._vad.reset()
        self._detector = SpeechDetector(self._win_s, self._opts.detector)
        return events

    def _step(self, window: Samples, prob: float, events: list[EndpointEvent]) -> None:
        t = self._clock
        self._clock += 1
        vad_events = self._detector.update(np.array([prob], dtype=np.float32))
        speaking = self._detector.speaking
        if not self._open:
            if speaking:
                self._open = True
                self._reset_utterance()
                self._audio = [*self._pre_roll, window]
                self._probs = [0.0] * len(self._pre_roll) + [prob]
                self._start_window = t - len(self._pre_roll)
                self._opened_at = t
                self._speech_windows = 1
                self._pre_roll.clear()
                self._maybe_announce(t, events)
            else:
                self._pre_roll.append(window)
            return
        self._audio.append(window)
        self._probs.append(prob)
        if speaking:
            self._speech_windows += 1
            self._silence_windows = 0
            self._verdict = None
            if self._pause_announced:
                self._pause_announced = False
                events.append(SpeechResumed(t * self._win_s))
            self._maybe_announce(t, events)
        else:
            self._silence_windows += 1
            if self._announced and any(e.kind == "speech_end" for e in vad_events):
                self._pause_announced = True
                events.append(SpeechPaused(t * self._win_s))
            if self._pause_ends(t, events):
                self._end_by_silence(events)
                return
        if len(self._audio) >= self._max_windows:
            self._cut(events)

    def _pause_ends(self, t: int, events: list[EndpointEvent]) -> bool:
        """The current pause ends the utterance now (it may ask the end-of-turn model)."""
        silence = self._silence_windows
        if self._turn is None:
            return silence >= self._min_silence
        if silence == self._check and self._speech_windows >= self._min_speech:
            verdict = self._turn.predict(np.concatenate(self._audio))
            complete = verdict.probability > self._opts.turn.threshold
            self._verdict = verdict if complete else None
            events.append(TurnChecked((t + 1) * self._win_s, silence * self._win_s, verdict, complete))
            return complete
        return silence >= self._max_silence

    def _maybe_announce(self, t: int, events: list[EndpointEvent]) -> None:
        if not self._announced and self._speech_windows == self._onset:  # it grows by one: told once
            events.append(SpeechOnset(self._opened_at * self._win_s))
        if not self._announced and self._speech_windows >= max(1, self._min_speech):
            self._announced = True
            events.append(SpeechStarted(self._start_window * self._win_s))

    def _end_by_silence(self, events: list[EndpointEvent]) -> None:
        trailing = self._silence_windows
        keep = len(self._audio) - max(0, trailing - self._pad)
        if self._speech_windows >= self._min_speech:
            self._emit(keep, "silence", events)
        elif self._speech_windows >= self._onset:  # its onset was told
            events.append(SpeechDropped(self._clock * self._win_s))
        tail = self._audio[len(self._audio) - min(trailing, self._pad) :]
        self._open = False
        self._reset_utterance()
        self._pre_roll.clear()
        self._pre_roll.extend(tail)

    def _cut(self, events: list[EndpointEvent]) -> None:
        lo = len(self._audio) - self._cut_search
        tail = np.asarray(self._probs[lo:])[::-1]
        quietest = len(self._audio) - 1 - int(np.argmin(tail))  # the latest of equally quiet windows
        cut = quietest + 1
        rest_audio, rest_probs = self._audio[cut:], self._probs[cut:]
        start = self._start_window + cut
        self._emit(cut, "max_length", events)
        self._audio, self._probs = rest_audio, rest_probs
        self._start_window = start
        self._speech_windows = sum(1 for p in rest_probs if p >= self._opts.detector.threshold)

    def _emit(self, windows: int, reason: UtteranceReason, events: list[EndpointEvent]) -> None:
        windows = max(1, min(windows, len(self._audio)))
        audio = np.concatenate(self._audio[:windows])
        start_s = self._start_window * self._win_s
        trailing = self._silence_windows if reason != "max_length" else 0
        speech_end = start_s + max(0, len(self._audio) - trailing) * self._win_s
        if not self._announced:
            self._announced = True
            events.append(SpeechStarted(start_s))
        events.append(
            Utterance(
                audio=audio,
                start_s=start_s,
                end_s=start_s + windows * self._win_s,
                reason=reason,
                index=self._index,
                speech_end_s=min(speech_end, start_s + windows * self._win_s),
                verdict=self._verdict if reason == "silence" else None,
            )
        )
        self._index += 1
