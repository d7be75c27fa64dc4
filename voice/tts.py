"""Piper TTS: streamed by sentence, cancellable, with word timings estimated inside each sentence.

Text pieces (LLM tokens) are read by a task of their own and cut into sentences; each sentence is synthesised
in the voice's single worker thread and yielded at once, so a long reply starts playing after its first
sentence. Closing or cancelling the consumer stops the reader and drops the sentences not yet spoken; the one
in progress finishes in its thread and is discarded.

Word timings: Piper's alignment output needs a patched model, so words are placed in proportion to their
phoneme count (from the voice's own phonemizer; letters when its words do not line up with the text's) plus a
pause for punctuation, inside the voiced part of each sentence's audio. Good enough to time gestures and
visemes to a word; exact per-phoneme timing would need the alignment output. Visemes (``voice.visemes``): each
word's phonemes spread over its span.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voice.audio import float_to_s16
from voice.errors import ModelLoadError, SynthesisError
from voice.sentences import SentenceSplitter, Span
from voice.types import PCM, TTSChunk, VoiceStyle, WordTiming
from voice.visemes import timed_visemes

log = logging.getLogger(__name__)

_WORD = re.compile(r"\S+")
_STRESS_AND_LENGTH = frozenset("\u02c8\u02cc\u02d0")  # stress and length marks, not phonemes
_PUNCT_PAUSE = {",": 2.0, ";": 3.0, ":": 3.0, ".": 3.0, "!": 3.0, "?": 3.0}


@dataclass(frozen=True)
class PiperOptions:
    use_cuda: bool = False
    length_scale: float | None = None  # None: the voice's own; > 1 slower, < 1 faster
    first_clause_chars: int = 0  # > 0: the first chunk may end at a comma after this many chars
    sentence_pause_ms: int = 0  # silence appended after each sentence


class PiperTTS:
    """A loaded Piper voice, shared by sessions (one synthesis at a time, in its own thread). ``styled`` gives
    the same voice with its own pace and pitch (one model, one thread: a room's characters share them)."""

    def __init__(
        self,
        voice: Any,
        options: PiperOptions,
        style: VoiceStyle | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._voice = voice
        self._options = options
        self.style = style = style or VoiceStyle()
        self.sample_rate = round(int(voice.config.sample_rate) * style.pitch)
        self._owner = executor is None  # a styled view leaves the thread to the voice it came from
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self.origin: PiperTTS = self  # the loaded voice a styled view came from (the one to close)
        own = options.length_scale or float(getattr(voice.config, "length_scale", 1.0) or 1.0)
        self._length_scale = own * style.pitch / style.rate

    def styled(self, style: VoiceStyle) -> PiperTTS:
        """This voice with ``style``'s pace and pitch, sharing its model and its synthesis thread."""
        view = PiperTTS(self._voice, self._options, style, self._executor)
        view.origin = self.origin
        return view

    @classmethod
    def load(cls, path: Path, options: PiperOptions = PiperOptions()) -> PiperTTS:
        from piper import PiperVoice

        config = Path(f"{path}.json")
        if not path.is_file() or not config.is_file():
            raise ModelLoadError(path, f"the Piper voice {path} (and its {config.name}) must both exist")
        try:
            voice = PiperVoice.load(path, config_path=config, use_cuda=options.use_cuda)
        except Exception as exc:  # onnxruntime/json errors
            raise ModelLoadError(path, f"cannot load the Piper voice {path}: {exc}") from None
        log.info("piper voice loaded", extra={"voice": path.name, "cuda": options.use_cuda})
        return cls(voice, options)

    def phonemes(self, text: str) -> list[str] | None:
        """The phonemes of each whitespace-separated word of ``text`` (espeak IPA), or None when the
        phonemizer's words differ from the text's."""
        try:
            sentences = self._voice.phonemize(text)
        except Exception:  # an alignment aid only: never fail speech for it
            return None
        words = " ".join("".join(p) for p in sentences).split()
        return words if len(words) == len(text.split()) else None

    def synthesize_sync(self, text: str) -> PCM:
        """Speech for one piece of text as mono int16 (blocking)."""
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=self._length_scale)
        try:
            pieces = [c.audio_float_array for c in self._voice.synthesize(text, syn_config=config)]
        except Exception as exc:  # espeak/onnxruntime failures
            raise SynthesisError(f"the voice could not speak a text of {len(text)} chars: {exc}") from None
        pause = np.zeros(self.sample_rate * self._options.sentence_pause_ms // 1000, dtype=np.float32)
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return float_to_s16(np.concatenate([*pieces, pause]))

    async def synthesize(self, text: str) -> PCM:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.synthesize_sync, text)

    async def _synthesize_timed(self, text: str) -> tuple[PCM, list[str] | None]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._synthesize_timed_sync, text)

    def _synthesize_timed_sync(self, text: str) -> tuple[PCM, list[str] | None]:
        return self.synthesize_sync(text), self.phonemes(text)

    async def stream(self, text_chunks: AsyncIterator[str]) -> AsyncIterator[TTSChunk]:
        """Speech chunks, one per sentence, as soon as each sentence is complete."""
        spans: asyncio.Queue[Span | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(text_chunks, spans))
        start_ms = 0.0
        try:
            while (span := await spans.get()) is not None:
                pcm, phonemes = await self._synthesize_timed(span.text)
                if not len(pcm):
                    continue
                counts = None if phonemes is None else _counts(phonemes)
                words = estimate_word_timings(span, pcm, self.sample_rate, start_ms, counts)
                mouth = timed_visemes(words, phonemes, end_ms=start_ms + voiced_range(pcm)[1] * 1000 / self.sample_rate)
                chunk = TTSChunk(pcm, self.sample_rate, span.text, span.start, span.end, start_ms, words, mouth)
                start_ms += chunk.duration_ms
                yield chunk
            await reader  # re-raise a failure of the text source
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, text_chunks: AsyncIterator[str], out: asyncio.Queue[Span | None]) -> None:
        splitter = SentenceSplitter(self._options.first_clause_chars)
        try:
            async for piece in text_chunks:
                for span in splitter.push(piece):
                    out.put_nowait(span)
                await asyncio.sleep(0)  # a source that never waits must not starve the synthesis
            for span in splitter.flush():
                out.put_nowait(span)
        finally:
            out.put_nowait(None)
            aclose = getattr(text_chunks, "aclose", None)
            if aclose is not None:
                await aclose()  # cancelled mid-reply: close the text source (e.g. stop the LLM stream)

    def close(self) -> None:
        """Stop the synthesis thread (a styled view's close does nothing: close its ``origin``)."""
        if self._owner:
            self._executor.shutdown(wait=True, cancel_futures=True)


def _counts(words: list[str]) -> list[int]:
    return [sum(1 for c in w if c.isalpha() and c not in _STRESS_AND_LENGTH) for w in words]


def voiced_range(pcm: PCM, threshold: int = 300) -> tuple[int, int]:
    """First and last+1 sample louder than ``threshold`` (the whole range when all is quiet)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    if not len(loud):
        return 0, len(pcm)
    return int(loud[0]), int(loud[-1]) + 1


def estimate_word_timings(
    span: Span, pcm: PCM, sample_rate: int, start_ms: float, phonemes: list[int] | None = None
) -> tuple[WordTiming, ...]:
    """Place the span's words inside the voiced part of ``pcm`` in proportion to their phoneme counts (letters
    when ``phonemes`` is None or does not match the words), plus a pause after punctuation."""
    matches = list(_WORD.finditer(span.text))
    if not matches:
        return ()
    if phonemes is None or len(phonemes) != len(matches):
        phonemes = [sum(1 for c in m.group() if c.isalnum()) for m in matches]
    weights = [n + _PUNCT_PAUSE.get(m.group()[-1], 0.0) + 1.0 for n, m in zip(phonemes, matches, strict=True)]
    first, last = voiced_range(pcm)
    ms_per_sample = 1000.0 / sample_rate
    begin, length = first * ms_per_sample, (last - first) * ms_per_sample
    total = sum(weights)
    out: list[WordTiming] = []
    acc = 0.0
    for m, w in zip(matches, weights, strict=True):
        word_start = begin + length * acc / total
        acc += w
        word_end = begin + length * acc / total
        out.append(
            WordTiming(
                text=m.group(),
                char_start=span.start + m.start(),
                char_end=span.start + m.end(),
                start_ms=start_ms + word_start,
                end_ms=start_ms + word_end,
            )
        )
    return tuple(out)
