"""The listening stage with fakes: events in order, partials at a bounded rate, finals in utterance order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from voice.audio import float_to_s16, resample
from voice.endpoint import Endpointer, EndpointOptions
from voice.errors import AudioFormatError
from voice.listener import DecodeFailed, Listener, ListenerOptions
from voice.testing import EnergyVADStream, FakeASR, silence, speech_like
from voice.types import AudioFrame, Samples, SpeechOnset, SpeechPaused, SpeechStarted, Transcript, Utterance

pytestmark = pytest.mark.unit


async def _frames(signal16k: Samples) -> AsyncIterator[AudioFrame]:
    """The signal as the transport delivers it: 48 kHz stereo int16, 20 ms frames."""
    pcm = float_to_s16(resample(signal16k, 16_000, 48_000))
    for i in range(0, len(pcm) - 959, 960):
        mono = pcm[i : i + 960]
        yield AudioFrame(np.stack([mono, mono], axis=1), 48_000, 2)


def _listener(asr: object, options: ListenerOptions | None = None, max_s: float = 20.0) -> Listener:
    endpointer = Endpointer(EnergyVADStream(), EndpointOptions(max_utterance_s=max_s))
    return Listener(endpointer, asr, options or ListenerOptions())  # type: ignore[arg-type]


async def _collect(listener: Listener, signal: Samples) -> list[object]:
    return [e async for e in listener.run(_frames(signal))]


async def test_silence_gives_no_events_and_no_decoding() -> None:
    asr = FakeASR()
    assert await _collect(_listener(asr), silence(3.0)) == []
    assert asr.calls == []


async def test_one_utterance_then_its_final_transcript() -> None:
    asr = FakeASR()
    signal = np.concatenate([silence(0.5), speech_like(1.2), silence(1.0)])
    events = await _collect(_listener(asr, ListenerOptions(partials=False, speculative=False)), signal)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechPaused, Utterance, Transcript]
    utt, final = events[3], events[4]
    assert isinstance(utt, Utterance) and isinstance(final, Transcript)
    assert final.final and final.utterance == 0
    assert final.text == f"{len(utt.audio)} samples"  # the final decoded exactly the utterance
    assert asr.calls == [(len(utt.audio), True)]


async def test_partials_are_bounded_and_grow() -> None:
    asr = FakeASR()
    signal = np.concatenate([silence(0.3), speech_like(5.0), silence(1.0)])
    options = ListenerOptions(partials=True, partial_interval_s=0.6, min_partial_s=0.5)
    events = await _collect(_listener(asr, options), signal)
    partial_calls = [n for n, final in asr.calls if not final]
    assert 1 <= len(partial_calls) <= int(5.6 / 0.6) + 1
    assert all(b - a >= 0.6 * 16_000 for a, b in zip(partial_calls, partial_calls[1:], strict=False))
    transcripts = [e for e in events if isinstance(e, Transcript)]
    assert [t.final for t in transcripts][-1] is True
    assert sum(t.final for t in transcripts) == 1
    assert all(not t.final for t in transcripts[:-1])


async def test_at_most_one_partial_in_flight() -> None:
    gate = asyncio.Event()

    class SlowPartials(FakeASR):
        in_flight = 0
        most = 0
        started = 0

        async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript:
            if final:
                gate.set()
                return await super().transcribe(audio, final=final)
            SlowPartials.in_flight += 1
            SlowPartials.started += 1
            SlowPartials.most = max(SlowPartials.most, SlowPartials.in_flight)
            try:
                await gate.wait()  # held until the utterance ends
                return await super().transcribe(audio, final=final)
            finally:
                SlowPartials.in_flight -= 1

    asr = SlowPartials()
    signal = np.concatenate([speech_like(4.0), silence(1.0)])
    events = await _collect(_listener(asr, ListenerOptions(partial_interval_s=0.2)), signal)
    assert SlowPartials.most == 1
    assert SlowPartials.started == 1  # the next partial waits for the first, which the utterance's end cancelled
    transcripts = [e for e in events if isinstance(e, Transcript) and not e.tentative]
    assert [e.final for e in transcripts] == [True]  # the held partial was cancelled


async def test_finals_arrive_in_utterance_order() -> None:
    second_started = asyncio.Event()

    class FirstIsSlow(FakeASR):
        async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript:
            index = sum(1 for _, f in self.calls if f)
            if index == 1:
                second_started.set()
            result = await super().transcribe(audio, final=final)
            if index == 0:
                await second_started.wait()
            return result

    signal = np.concatenate([speech_like(1.0), silence(1.0), speech_like(1.0, seed=2), silence(1.0)])
    events = await _collect(_listener(FirstIsSlow(), ListenerOptions(partials=False)), signal)
    finals = [e for e in events if isinstance(e, Transcript)]
    assert [t.utterance for t in finals] == [0, 1]


async def test_long_speech_is_transcribed_piece_by_piece() -> None:
    asr = FakeASR()
    signal = np.concatenate([speech_like(25.0), silence(1.0)])
    events = await _collect(_listener(asr, ListenerOptions(partials=False), max_s=8.0), signal)
    utts = [e for e in events if isinstance(e, Utterance)]
    finals = [e for e in events if isinstance(e, Transcript) and e.final]
    assert len(utts) == 4 and [u.reason for u in utts] == ["max_length"] * 3 + ["silence"]
    assert [t.utterance for t in finals] == [0, 1, 2, 3]
    assert sum(len(u.audio) for u in utts) >= 25.0 * 16_000 - 2_000


async def test_end_of_input_while_speaking_still_transcribes() -> None:
    asr = FakeASR()
    events = await _collect(_listener(asr, ListenerOptions(partials=False)), speech_like(1.5))
    utts = [e for e in events if isinstance(e, Utterance)]
    assert [u.reason for u in utts] == ["end_of_stream"]
    assert isinstance(events[-1], Transcript) and events[-1].final


async def test_bad_frames_raise_a_voice_error() -> None:
    async def frames() -> AsyncIterator[AudioFrame]:
        yield AudioFrame(np.zeros((960, 2), dtype=np.int16), 1, 2)

    with pytest.raises(AudioFormatError, match="sample rate"):
        async for _ in _listener(FakeASR()).run(frames()):
            pass


class FailsOnce(FakeASR):
    """Raises on the first partial and on the first final decode; decodes everything else."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: set[bool] = set()

    async def transcribe(self, audio: Samples, *, final: bool = True) -> Transcript:
        result = await super().transcribe(audio, final=final)
        if final not in self.failed:
            self.failed.add(final)
            raise RuntimeError("decoder died")
        return result


async def test_a_failed_final_is_an_event_in_order_and_listening_goes_on() -> None:
    signal = np.concatenate([speech_like(1.0), silence(1.0), speech_like(1.0, seed=2), silence(1.0)])
    events = await _collect(_listener(FailsOnce(), ListenerOptions(partials=False)), signal)
    outcomes = [e for e in events if isinstance(e, DecodeFailed | Transcript) and not getattr(e, "tentative", False)]
    assert [type(e) for e in outcomes] == [DecodeFailed, Transcript]
    failed, final = outcomes
    assert isinstance(failed, DecodeFailed) and failed.final and failed.utterance == 0
    assert str(failed.error) == "decoder died"
    assert isinstance(final, Transcript) and final.final and final.utterance == 1


async def test_a_failed_partial_is_reported_once_and_the_final_still_comes() -> None:
    asr = FailsOnce()
    asr.failed.add(True)  # only the first partial fails
    options = ListenerOptions(partial_interval_s=0.2, speculative=False)
    events = await _collect(_listener(asr, options), np.concatenate([speech_like(3.0), silence(1.0)]))
    (failed,) = [e for e in events if isinstance(e, DecodeFailed)]
    assert not failed.final and failed.utterance == 0
    assert [final for _, final in asr.calls] == [False, True]  # no partial after the failed one
    assert [e.final for e in events if isinstance(e, Transcript)] == [True]


async def test_speculative_final_starts_at_the_pause_and_is_kept() -> None:
    asr = FakeASR()
    signal = np.concatenate([silence(0.5), speech_like(1.2), silence(1.0)])
    seen_at_utterance: list[tuple[int, bool]] = []
    events = []
    async for e in _listener(asr, ListenerOptions(partials=False)).run(_frames(signal)):
        events.append(e)
        if isinstance(e, Utterance):
            seen_at_utterance = list(asr.calls)
    assert [type(e) for e in events] == [SpeechOnset, SpeechStarted, SpeechPaused, Transcript, Utterance, Transcript]
    assert len(seen_at_utterance) == 1 and seen_at_utterance[0][1]  # decoding began before the endpoint
    assert len(asr.calls) == 1  # and it was the final: no second decode
    tentative, utt, final = events[3], events[4], events[5]
    assert isinstance(utt, Utterance) and isinstance(final, Transcript) and isinstance(tentative, Transcript)
    # announced during the silence, before the endpoint: a reply can be prepared from it
    assert tentative.tentative and not tentative.final and tentative.utterance == 0
    assert asr.calls[0][0] < len(utt.audio)  # the speech without the trailing silence
    assert final.final and final.utterance == 0 and not final.tentative
    assert final.text == tentative.text


async def test_speech_after_the_pause_discards_the_speculation() -> None:
    asr = FakeASR()
    signal = np.concatenate([speech_like(1.0), silence(0.3), speech_like(1.0, seed=3), silence(1.0)])
    events = await _collect(_listener(asr, ListenerOptions(partials=False)), signal)
    finals = [e for e in events if isinstance(e, Transcript) and e.final]
    assert len([e for e in events if isinstance(e, SpeechPaused)]) == 2
    # the guess made at the first pause was announced, then made stale by the speech after it
    kinds = [type(e).__name__ + ("~" if getattr(e, "tentative", False) else "") for e in events]
    assert kinds.index("Transcript~") < kinds.index("SpeechResumed") < kinds.index("Utterance")
    assert [n for n, _ in asr.calls] == sorted(n for n, _ in asr.calls) and len(asr.calls) == 2
    (final,) = finals
    assert final.text == f"{asr.calls[-1][0]} samples"  # the decode that holds both parts


async def test_a_stale_guess_is_never_used_even_with_coarse_frames() -> None:
    # 0.5 s frames: a pause, the speech after it and the end can all arrive in one batch of events
    signal = np.concatenate([speech_like(1.0), silence(0.4), speech_like(1.0, seed=3), silence(1.5)])
    pcm = float_to_s16(signal)

    async def coarse() -> AsyncIterator[AudioFrame]:
        for i in range(0, len(pcm), 8_000):
            yield AudioFrame(pcm[i : i + 8_000, None], 16_000, 1)

    asr = FakeASR()
    events = [e async for e in _listener(asr, ListenerOptions(partials=False)).run(coarse())]
    (utt,) = [e for e in events if isinstance(e, Utterance)]
    (final,) = [e for e in events if isinstance(e, Transcript) and e.final]
    decoded = int(final.text.split()[0])
    assert decoded > 2.2 * 16_000  # both parts of the speech, never the guess made at the first pause
    assert decoded <= len(utt.audio)
