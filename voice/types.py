"""The voice contract: audio frames, VAD and endpoint events, transcripts, speech chunks, and the protocols.

Audio between stages is numpy: ``int16`` PCM in frames that cross the network edge, ``float32`` in [-1, 1]
inside (16 kHz mono for VAD and ASR). Stages are async iterators; model compute runs off the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

PCM = npt.NDArray[np.int16]
Samples = npt.NDArray[np.float32]

ASR_RATE = 16_000  # what VAD and ASR consume: mono float32


@dataclass(frozen=True, eq=False)
class AudioFrame:
    """Interleaved PCM: ``pcm`` has shape (samples, channels), dtype int16."""

    pcm: PCM
    sample_rate: int
    channels: int

    @property
    def samples(self) -> int:
        return int(self.pcm.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


@dataclass(frozen=True)
class VADEvent:
    """A speech transition seen by the VAD, at ``at_s`` seconds of the stream."""

    kind: Literal["speech_start", "speech_end"]
    at_s: float


@dataclass(frozen=True)
class SpeechStarted:
    """The endpointer opened an utterance (the user began to speak): the moment to barge in."""

    at_s: float


@dataclass(frozen=True)
class SpeechOnset:
    """The VAD heard the first of what may be speech (before ``min_speech`` of it makes it SpeechStarted): the
    moment to hold a reply's voice, cheaply undone. It is followed by SpeechStarted, or by SpeechDropped."""

    at_s: float


@dataclass(frozen=True)
class SpeechDropped:
    """What began at the last SpeechOnset ended too short to be speech (a click, a cough): no utterance."""

    at_s: float


@dataclass(frozen=True)
class SpeechPaused:
    """Speech stopped inside an utterance; if it stays silent for ``min_silence`` the utterance ends."""

    at_s: float


@dataclass(frozen=True)
class SpeechResumed:
    """Speech came back after a SpeechPaused, in the same utterance: anything prepared for that pause is stale."""

    at_s: float


@dataclass(frozen=True)
class TurnVerdict:
    """An end-of-turn model's judgement of a pause: the ``probability`` that the speaker has finished."""

    probability: float
    compute_s: float = 0.0


@dataclass(frozen=True)
class TurnChecked:
    """The end-of-turn model judged the pause at ``at_s`` (after ``silence_s`` of it): ``complete`` (its
    probability above the endpointer's threshold) ends the utterance now; incomplete waits for more speech,
    up to the longer silence."""

    at_s: float
    silence_s: float
    verdict: TurnVerdict
    complete: bool


UtteranceReason = Literal["silence", "max_length", "end_of_stream"]


@dataclass(frozen=True, eq=False)
class Utterance:
    """A piece of speech to transcribe: 16 kHz mono float32 including pre-roll.

    ``reason``: ``silence`` (the speaker stopped), ``max_length`` (cut; the speech goes on in the next piece),
    ``end_of_stream`` (the input ended while speaking).
    """

    audio: Samples
    start_s: float
    end_s: float
    reason: UtteranceReason
    index: int  # 0, 1, ... per endpointer
    speech_end_s: float | None = None  # where the speech in it ended (its last speech window); None: at end_s
    verdict: TurnVerdict | None = None  # the end-of-turn model's verdict that ended it (None: silence did)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / ASR_RATE


EndpointEvent = SpeechOnset | SpeechDropped | SpeechStarted | SpeechPaused | SpeechResumed | TurnChecked | Utterance


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    final: bool
    words: tuple[Word, ...] = ()
    audio_s: float = 0.0  # length of the audio decoded
    compute_s: float = 0.0  # time spent decoding
    window_s: float = 30.0  # the encoder window the decode used (Whisper's 30 s, or one fitted to the audio)
    utterance: int = -1  # Utterance.index it came from, -1 if none
    # final=False, tentative=True: the final decode of the utterance so far, made in a pause; it becomes the
    # final transcript if the utterance ends on that pause, and is stale once SpeechResumed comes
    tentative: bool = False


@dataclass(frozen=True)
class WordTiming:
    """Where a word of the reply text is heard: char offsets in the whole text, ms offsets in the reply audio."""

    text: str
    char_start: int
    char_end: int
    start_ms: float
    end_ms: float


@dataclass(frozen=True, eq=False)
class TTSChunk:
    """Speech for ``text`` (chars ``char_start:char_end`` of everything streamed so far).

    ``pcm``: mono int16 at ``sample_rate``. ``start_ms`` is the chunk's offset in the reply's audio.
    ``words`` are estimated where the engine gives no alignment. ``visemes``: (ms, id) mouth-shape onsets on the
    same clock as ``words`` (``voice.visemes``), empty when the engine cannot say.
    """

    pcm: PCM
    sample_rate: int
    text: str
    char_start: int
    char_end: int
    start_ms: float
    words: tuple[WordTiming, ...] = field(default=())
    visemes: tuple[tuple[float, str], ...] = field(default=())

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.pcm) / self.sample_rate


class VADStream(Protocol):
    """Per-session VAD state. ``probabilities`` buffers a partial window and returns one speech probability
    per completed window of ``window_samples`` (16 kHz mono float32). Synchronous and cheap: call it off the
    event loop."""

    window_samples: int

    def probabilities(self, samples: Samples) -> npt.NDArray[np.float32]: ...

    def reset(self) -> None: ...


class VAD(Protocol):
    """A loaded VAD model, shared by sessions; ``open()`` gives one session's stream."""

    def open(self) -> VADStream: ...


class TurnDetector(Protocol):
    """A loaded end-of-turn model, shared by sessions: has the speaker finished, judged from the audio of
    the turn so far (16 kHz mono float32, ending in the pause). Synchronous: call it off the event loop."""

    def predict(self, audio: Samples) -> TurnVerdict: ...


class ASR(Protocol):
    """A loaded speech recogniser, shared by sessions. Decoding runs off the event loop."""

    async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript: ...


@dataclass(frozen=True)
class VoiceStyle:
    """A voice's own pace and pitch, as factors (> 1: faster, higher). Pitch is shifted by resampling, with
    the pace made up in synthesis, so it costs nothing: the voice speaks ``pitch / rate`` times longer and its
    audio is labelled ``pitch`` times its native sample rate (the playback resampler does the rest)."""

    rate: float = 1.0
    pitch: float = 1.0

    def __post_init__(self) -> None:
        if not (0.5 <= self.rate <= 2.0 and 0.7 <= self.pitch <= 1.4):
            raise ValueError(f"a voice style's rate is 0.5-2.0 and pitch 0.7-1.4, not {self.rate}, {self.pitch}")


class TTS(Protocol):
    """A loaded voice, shared by sessions. Text arrives in pieces (e.g. LLM tokens); speech comes back as soon
    as a sentence is complete. Cancelling the consumer stops synthesis after the piece in progress."""

    sample_rate: int

    def stream(self, text_chunks: AsyncIterator[str]) -> AsyncIterator[TTSChunk]: ...


__all__ = [
    "ASR",
    "ASR_RATE",
    "PCM",
    "TTS",
    "VAD",
    "AudioFrame",
    "EndpointEvent",
    "Samples",
    "SpeechPaused",
    "SpeechResumed",
    "SpeechStarted",
    "TTSChunk",
    "Transcript",
    "TurnChecked",
    "TurnDetector",
    "TurnVerdict",
    "VoiceStyle",
    "Utterance",
    "UtteranceReason",
    "VADEvent",
    "VADStream",
    "Word",
    "WordTiming",
]
