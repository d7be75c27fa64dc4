"""Whisper ASR on faster-whisper (CTranslate2): one model per process, one decoding worker thread.

faster-whisper's ``transcribe`` returns a lazy generator; the decoding happens while it is iterated, so the
whole call *and* the iteration run in the model's single-worker executor, never on the event loop. The
single worker also serialises sessions on the shared model.

Short windows: faster-whisper always encodes a 30 s window, however short the utterance, and on a CPU the
encoder is most of a decode (tiny.en on 2 cores: 0.28 s of a 0.45 s call for a 2 s question). A
conversational utterance is a few seconds, so when word timings are not asked for and the language is known,
the decode encodes a window fitted to the utterance instead (``WhisperOptions.window``: the audio plus a
margin, at least ``min_window_s``; CTranslate2's encoder takes any length up to 30 s) and decodes it once,
greedily or by beam. A result with no words, or one Whisper's own checks would reject (too repetitive, too
unlikely: faster-whisper's thresholds), is decoded again the full way, with its temperature fallback and its
no-speech check. ``llmasos bench voice`` measures both ways on the same clips.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voice.errors import AudioFormatError, EmptyAudioError, ModelLoadError
from voice.types import ASR_RATE, Samples, Transcript, Word

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WhisperLoadOptions:
    device: str = "auto"  # auto | cpu | cuda
    compute_type: str | None = None  # None: int8 on CPU, float16 on CUDA
    cpu_threads: int = 0  # 0: CTranslate2's default


@dataclass(frozen=True)
class WhisperOptions:
    beam_size: int = 1
    language: str | None = None  # None: detect (multilingual models); English-only models say "en"
    word_timestamps: bool = True  # on final transcripts; partials never compute them
    window: WindowOptions | None = None  # the fitted encoder window (None: always faster-whisper's 30 s)


@dataclass(frozen=True)
class WindowOptions:
    """The encoder window fitted to an utterance: its length plus ``margin_s``, at least ``min_window_s``, in
    steps of ``step_s`` (a few distinct shapes, so CTranslate2 reuses its buffers)."""

    min_window_s: float = 8.0
    margin_s: float = 1.0
    step_s: float = 2.0


# faster-whisper's quality gates (its transcribe defaults), applied to the one fitted decode
_COMPRESSION_MAX = 2.4
_LOGPROB_MIN = -1.0
_NO_SPEECH = 0.6
_MAX_WINDOW_S = 30.0
# a fitted decode stops at this many tokens (speech is at most ~4 words a second): a decode that runs on is a
# loop, and Whisper's checks send it the full way anyway
_MIN_TOKENS = 16
_TOKENS_PER_S = 8


def cuda_available() -> bool:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count()) > 0
    except Exception:  # no CUDA runtime at all
        return False


class WhisperASR:
    """A loaded Whisper model. ``transcribe`` is safe to call from any number of sessions at once."""

    sample_rate = ASR_RATE

    def __init__(self, model: Any, options: WhisperOptions, name: str, device: str) -> None:
        self._model = model
        self._options = options
        self.name = name
        self.device = device
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._owner = True  # a prompted view leaves the thread to the model it came from
        self._prompt: str | Callable[[], str] = ""

    def with_prompt(self, prompt: str | Callable[[], str]) -> WhisperASR:
        """This model, told the words to expect (a room's names: "Hilda, Brom Ironhand, blacksmith"), sharing its
        model and its decoding thread. Whisper reads the prompt as text said before the audio, so it spells
        those words as given. A decode that only says the prompt's own words back (what Whisper does with
        noise when given a prompt) is no speech. A callable is read at each decode (on the decoding thread:
        it must only read a value, e.g. a room's names as they are now)."""
        view = copy.copy(self)
        view._prompt, view._owner = prompt, False
        return view

    @property
    def prompt(self) -> str | None:
        """The prompt the next decode gets (None: none)."""
        prompt = self._prompt() if callable(self._prompt) else self._prompt
        return prompt.strip() or None

    @classmethod
    def load(
        cls, path: Path, options: WhisperOptions = WhisperOptions(), load: WhisperLoadOptions = WhisperLoadOptions()
    ) -> WhisperASR:
        from faster_whisper import WhisperModel

        device = load.device if load.device != "auto" else ("cuda" if cuda_available() else "cpu")
        compute_type = load.compute_type or ("float16" if device == "cuda" else "int8")
        if not path.is_dir():
            raise ModelLoadError(path, f"the Whisper model directory {path} does not exist")
        try:
            model = WhisperModel(
                str(path), device=device, compute_type=compute_type, cpu_threads=load.cpu_threads, num_workers=1
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError with its own text
            raise ModelLoadError(path, f"cannot load the Whisper model in {path} on {device}: {exc}") from None
        log.info("whisper loaded", extra={"model": path.name, "device": device, "compute_type": compute_type})
        return cls(model, options, path.name, device)

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript:
        """Decode 16 kHz mono float32. ``final=False`` is a cheaper partial (greedy, no word timings)."""
        _check(audio)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_sync, audio, final)

    def transcribe_sync(self, audio: Samples, final: bool = True) -> Transcript:
        """The blocking decode; for threads and the CLI. Iterates the lazy segment generator here."""
        _check(audio)
        opts = self._options
        started = time.perf_counter()
        prompt = self.prompt
        if self._fits(audio, final):
            window_s = self._window_s(audio)
            text = self._decode_fitted(audio, window_s, prompt, final)
            if text is not None:
                if prompt and prompt_echo(text, prompt):
                    text = ""
                return Transcript(
                    text=text,
                    language=self._language or "en",
                    final=final,
                    audio_s=len(audio) / ASR_RATE,
                    compute_s=time.perf_counter() - started,
                    window_s=window_s,
                )
        segments, info = self._model.transcribe(
            audio,
            language=opts.language if self.multilingual else "en",
            beam_size=opts.beam_size if final else 1,
            temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if final else 0.0,
            word_timestamps=final and opts.word_timestamps,
            without_timestamps=not final,
            condition_on_previous_text=False,
            vad_filter=False,
            initial_prompt=prompt,
        )
        texts: list[str] = []
        words: list[Word] = []
        for seg in segments:  # the decoding happens here
            texts.append(seg.text)
            for w in seg.words or ():
                words.append(Word(w.word.strip(), float(w.start), float(w.end), float(w.probability)))
        text = " ".join(t.strip() for t in texts if t.strip())
        if prompt and prompt_echo(text, prompt):
            text, words = "", []
        return Transcript(
            text=text,
            language=str(info.language),
            final=final,
            words=tuple(words),
            audio_s=len(audio) / ASR_RATE,
            compute_s=time.perf_counter() - started,
        )

    @property
    def _language(self) -> str | None:
        return self._options.language if self.multilingual else "en"

    def _fits(self, audio: Samples, final: bool) -> bool:
        """The fitted window applies: asked for, no word timings wanted, a known language, a short utterance."""
        window = self._options.window
        if window is None or self._language is None:
            return False
        if final and self._options.word_timestamps:
            return False
        return len(audio) / ASR_RATE + window.margin_s <= _MAX_WINDOW_S

    def _window_s(self, audio: Samples) -> float:
        window = self._options.window
        assert window is not None
        seconds = len(audio) / ASR_RATE + window.margin_s
        return float(min(_MAX_WINDOW_S, max(window.min_window_s, window.step_s * np.ceil(seconds / window.step_s))))

    def _decode_fitted(self, audio: Samples, seconds: float, prompt: str | None, final: bool) -> str | None:
        """One decode of ``audio`` in a window fitted to it: its text, or None when it heard no words or Whisper's
        checks reject it (decode it the full way)."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        model = self._model
        extractor = model.feature_extractor
        frames = int(round(seconds * ASR_RATE / extractor.hop_length))
        features = extractor(audio)[:, :frames]
        if features.shape[-1] < frames:  # the rest of the window is what faster-whisper pads with
            features = np.pad(features, ((0, 0), (0, frames - features.shape[-1])))
        tokenizer = Tokenizer(model.hf_tokenizer, self.multilingual, task="transcribe", language=self._language)
        previous = tokenizer.encode(" " + prompt.strip()) if prompt else []
        tokens = model.get_prompt(tokenizer, previous, without_timestamps=True)
        beam = self._options.beam_size if final else 1
        limit = min(model.max_length, len(tokens) + _MIN_TOKENS + int(_TOKENS_PER_S * len(audio) / ASR_RATE))
        result = model.model.generate(
            model.encode(features),
            [tokens],
            beam_size=beam,
            max_length=limit,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        ids = result.sequences_ids[0]
        if len(tokens) + len(ids) >= limit:
            log.debug("fitted decode ran on", extra={"tokens": len(ids)})
            return None  # a loop ("Can you repair my old ax? Can you repair my old ax? Can ..."): the full way
        text = str(tokenizer.decode(ids)).strip()
        logprob = result.scores[0] * len(ids) / (len(ids) + 1)  # faster-whisper's average (length penalty 1)
        if not any(ch.isalnum() for ch in text) or (result.no_speech_prob > _NO_SPEECH and logprob < _LOGPROB_MIN):
            # no words: a short window hears none in a first syllable ("And") more often than the full one
            # does, so silence is left to the full decode (the old cost, only when nothing is said)
            return None
        if logprob < _LOGPROB_MIN or get_compression_ratio(text) > _COMPRESSION_MAX or repeats(text):
            log.debug("fitted decode rejected", extra={"logprob": round(logprob, 2), "text": text[:80]})
            return None
        return text

    def warmup(self) -> None:
        """One decode of a second of silence, so the first user does not pay for lazy initialisation."""
        self.transcribe_sync(np.zeros(ASR_RATE, dtype=np.float32), final=False)

    def close(self) -> None:
        """Stop the decoding thread (a prompted view's close does nothing)."""
        if self._owner:
            self._executor.shutdown(wait=True, cancel_futures=True)


def prompt_echo(text: str, prompt: str) -> bool:
    """``text`` is nothing but words of ``prompt`` (names read back), or nothing at all."""
    said = re.findall(r"[a-z']+", text.lower())
    return bool(said) and set(said) <= set(re.findall(r"[a-z']+", prompt.lower()))


def repeats(text: str, shortest: int = 3) -> bool:
    """``text`` says a phrase of at least ``shortest`` words twice in a row: how a decode of too short a
    window loops ("Can you repair my old ax? Can you repair my old ax?")."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    for n in range(shortest, len(words) // 2 + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i : i + n] == words[i + n : i + 2 * n]:
                return True
    return False


def _check(audio: Samples) -> None:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise AudioFormatError(f"ASR takes 16 kHz mono float32 samples, got {getattr(audio, 'shape', type(audio))}")
    if audio.dtype != np.float32:
        raise AudioFormatError(f"ASR takes float32 samples in [-1, 1], got {audio.dtype}")
    if len(audio) == 0:
        raise EmptyAudioError("no audio to transcribe")
