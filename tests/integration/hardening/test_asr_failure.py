"""A failed decode does not end the call, with the real listening stage: Silero VAD, the endpointer, the
listener and Whisper tiny.en on a human speech clip (LJ Speech). The ASR raises on the first partial and on the
first final decode; the session gets two `asr_failed` errors and answers the same words said again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fakes import FakeMemory, FakeTransport, FakeVoice, RecordingObserver, make_conversation, play_until_final

from llmasos.conversation import Conversation, ConversationOptions, Services, Transport
from llmasos.models import ModelStore
from llmasos.settings import Settings, load_settings
from llmasos.voice_factory import load_asr, load_vad, open_listener
from rtc.audio import PcmFrame
from voice.asr import WhisperASR
from voice.audio import float_to_s16, resample
from voice.audiofile import decode_file
from voice.types import ASR, Samples, Transcript
from voice.vad import SileroVAD

pytestmark = pytest.mark.integration

CLIP = Path(__file__).resolve().parents[2] / "data" / "voice" / "LJ001-0008.wav"  # "has never been surpassed."


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(None, data_dir=str(tmp_path_factory.mktemp("asr-failure")))


@pytest.fixture(scope="module")
def models(settings: Settings) -> Iterator[tuple[SileroVAD, WhisperASR]]:
    store = ModelStore(settings.data_dir)
    asr = load_asr(settings, store)
    yield load_vad(settings, store), asr
    asr.close()


class FailsOnce:
    """The ASR protocol over the real Whisper: the first partial and the first final decode raise (a decoder
    crash), after the real decode ran."""

    def __init__(self, asr: ASR) -> None:
        self._asr = asr
        self.failed: list[bool] = []
        self.partial_failed = asyncio.Event()

    async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript:
        result = await self._asr.transcribe(audio, final=final)
        if final not in self.failed:
            self.failed.append(final)
            if not final:
                self.partial_failed.set()
            raise RuntimeError("ctranslate2: decoder crashed")
        return result


class MicTransport(FakeTransport):
    """A transport whose microphone plays ``frames`` once, then stays silent until the session closes. Before
    frame ``hold_at`` it waits for ``until``: frames come faster than real time, so a decode started mid-speech
    is let finish before the speech does."""

    def __init__(self, frames: list[PcmFrame], hold_at: int, until: asyncio.Event) -> None:
        super().__init__()
        self._frames, self._hold_at, self._until = frames, hold_at, until

    async def audio_frames(self) -> AsyncIterator[PcmFrame]:
        for i, frame in enumerate(self._frames):
            if i == self._hold_at:
                await self._until.wait()
            yield frame
        await self.closed.wait()


def mic(signal16k: Samples) -> list[PcmFrame]:
    """The signal as WebRTC delivers it: 48 kHz stereo int16, 20 ms frames."""
    pcm = float_to_s16(resample(signal16k, 16_000, 48_000))
    return [PcmFrame(np.repeat(pcm[i : i + 960], 2), 48_000, 2) for i in range(0, len(pcm) - 959, 960)]


async def expect(t: FakeTransport, session: asyncio.Task[None], predicate: Any) -> dict[str, Any]:
    """The first message matching ``predicate``; fails at once if the session ends before it comes."""
    waiter = asyncio.ensure_future(t.until(predicate))
    await asyncio.wait([waiter, session], return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        pytest.fail(f"the session ended; it sent {[m['type'] for m in t.sent]}")
    return waiter.result()


async def test_failed_decodes_get_errors_and_the_words_said_again_are_answered(
    settings: Settings, models: tuple[SileroVAD, WhisperASR]
) -> None:
    vad, whisper = models
    asr, observer = FailsOnce(whisper), RecordingObserver()
    clip, gap = decode_file(CLIP), np.zeros(16_000 * 3 // 2, dtype=np.float32)
    # the first partial starts within the first half second of speech: the rest waits for it to fail
    t = MicTransport(mic(np.concatenate([gap, clip, gap, clip, gap])), (len(gap) + 8_000) // 320, asr.partial_failed)
    conv, *_ = make_conversation("Aye.")  # its dialogue manager
    services = Services(lambda: open_listener(settings, vad, asr), FakeVoice(), FakeMemory(), observer)
    conversation = Conversation(services, t, conv.manager, "ann", ConversationOptions(greet=False))
    task = asyncio.create_task(conversation.run())

    final = await expect(t, task, lambda m: m["type"] == "transcript" and m["final"])
    assert "surpassed" in final["text"].lower()
    assert [e["code"] for e in t.of("error")] == ["asr_failed", "asr_failed"]  # the partial, then the final
    assert asr.failed == [False, True]
    assert (await play_until_final(t))["text"] == "Aye."
    t.closed.set()
    await task
    assert len(conversation.transcripts) == 1  # the utterance whose decode failed went unanswered
    assert observer.errors == ["asr_failed", "asr_failed"]


if TYPE_CHECKING:  # each fake implements the whole protocol it stands in for
    _asr: type[ASR] = FailsOnce
    _transport: type[Transport] = MicTransport
