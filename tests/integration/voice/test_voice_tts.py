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


async def test_visemes_follow_the_voice_s_phonemes_and_its_audio(tts: PiperTTS) -> None:
    from voice.visemes import VISEMES

    chunks = [c async for c in tts.stream(_tokens("Good morning, traveller. Maybe some bread?"))]
    open_mouth = voiced = 0
    for c in chunks:
        assert c.visemes and {v for _, v in c.visemes} <= set(VISEMES)
        onsets = [ms for ms, _ in c.visemes]
        assert onsets == sorted(onsets) and onsets[0] == pytest.approx(c.words[0].start_ms, abs=0.1)
        assert c.visemes[-1][1] == "sil" and onsets[-1] <= c.start_ms + c.duration_ms
        # the mouth opens where the voice is: 10 ms windows under a vowel's viseme are voiced (consonants such as
        # s, f, t may be quiet)
        level = np.abs(c.pcm.astype(np.int32))
        window = c.sample_rate // 100
        for (start, v), (end, _) in zip(c.visemes, c.visemes[1:], strict=False):
            if v not in ("aa", "E", "IH", "OH", "OU"):
                continue
            for ms in np.arange(start, end, 10.0):
                i = int((ms - c.start_ms) * c.sample_rate / 1000)
                open_mouth += 1
                voiced += int(level[i : i + window].max(initial=0) > 300)
    # words from the voice's own phonemizer: "morning" and "maybe" close the lips (m) at their start
    shapes = [v for c in chunks for _, v in c.visemes]
    assert shapes.count("PP") >= 2
    print(f"open-mouth windows voiced: {voiced}/{open_mouth}")
    assert voiced / open_mouth >= 0.9
