"""Piper: streamed by sentence, cancellable, timed; and what it says, Whisper hears."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from voice.asr import WhisperASR
from voice.audio import resample, s16_to_float
from voice.tts import PiperTTS
from voice.types import TTSChunk
from voice.wer import wer

pytestmark = pytest.mark.integration

SENTENCES = (
    "Good morning, traveller.",
    "Do you have any swords for sale?",
    "The blacksmith opens his shop at noon.",
    "I will trade you three apples for that shield.",
    "Follow the river north until you reach the old bridge.",
)


async def _tokens(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "


async def test_stream_gives_one_timed_chunk_per_sentence(tts: PiperTTS) -> None:
    text = " ".join(SENTENCES)
    chunks = [c async for c in tts.stream(_tokens(text))]
    assert [c.text for c in chunks] == list(SENTENCES)
    assert all(text[c.char_start : c.char_end] == c.text for c in chunks)
    offset = 0.0
    for c in chunks:
        assert c.sample_rate == 22_050 and c.pcm.dtype == np.int16 and len(c.pcm) > 0
        assert c.start_ms == pytest.approx(offset)
        offset += c.duration_ms
        assert [w.text for w in c.words] == c.text.split()
        assert c.start_ms <= c.words[0].start_ms < c.words[-1].end_ms <= c.start_ms + c.duration_ms


async def test_tts_to_asr_round_trip(tts: PiperTTS, asr: WhisperASR) -> None:
    chunks = [c async for c in tts.stream(_tokens(" ".join(SENTENCES)))]
    audio = resample(s16_to_float(np.concatenate([c.pcm for c in chunks])), tts.sample_rate, 16_000)
    heard = (await asr.transcribe(audio)).text
    assert wer(" ".join(SENTENCES), heard) <= 0.10, heard


async def test_first_audio_comes_before_the_text_is_finished(tts: PiperTTS) -> None:
    rest_of_reply = asyncio.Event()

    async def held_text() -> AsyncIterator[str]:
        yield SENTENCES[0] + " "
        yield SENTENCES[1][:10]
        await rest_of_reply.wait()  # the LLM is still writing
        yield SENTENCES[1][10:]

    stream = tts.stream(held_text())
    first = await asyncio.wait_for(anext(stream), timeout=60)
    assert first.text == SENTENCES[0]
    rest_of_reply.set()
    assert [c.text async for c in stream] == [SENTENCES[1]]


async def test_cancel_mid_reply_stops_reading_and_speaking(tts: PiperTTS) -> None:
    closed = False
    offered = 0

    async def endless() -> AsyncIterator[str]:
        nonlocal closed, offered
        try:
            while True:
                offered += 1
                yield f"This is sentence number {offered}. "
        finally:
            closed = True

    got: list[TTSChunk] = []
    stream = tts.stream(endless())
    async for chunk in stream:
        got.append(chunk)
        if len(got) == 2:
            break
    await stream.aclose()
    assert closed, "the text source was not closed"
    assert len(got) == 2
    # nothing is left running: the voice answers a new request at once
    assert len(await tts.synthesize("Still here.")) > 0


async def test_empty_and_punctuation_only_text_gives_no_audio(tts: PiperTTS) -> None:
    assert [c async for c in tts.stream(_tokens(""))] == []
    assert [c async for c in tts.stream(_tokens("... !"))] == []
