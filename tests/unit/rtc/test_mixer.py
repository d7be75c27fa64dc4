"""The room's mix-minus on a virtual clock: each listener hears the voices and the others, never itself;
voices count as played when mixed; mic buffers stay bounded; the relay delay is measured."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from rtc.audio import FRAME_SAMPLES, SAMPLE_RATE, PcmFrame
from rtc.mixer import MixedTrack, RoomMixer, to_mono_48k

pytestmark = pytest.mark.unit


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def _mono(value: int, n: int = FRAME_SAMPLES, rate: int = SAMPLE_RATE) -> PcmFrame:
    return PcmFrame(np.full(n, value, dtype=np.int16), rate, 1)


async def _next(track: MixedTrack) -> np.ndarray:
    frame = await track.recv()
    return frame.to_ndarray().reshape(-1)


async def test_each_listener_hears_the_voices_and_the_others_but_not_itself() -> None:
    mixer = RoomMixer()
    ears = {p: mixer.add_participant(p) for p in ("ann", "bob", "cat")}
    voice = mixer.add_voice("blacksmith")
    await voice.write(np.full(FRAME_SAMPLES, 1000, dtype=np.int16))
    mixer.feed("ann", _mono(1))
    mixer.feed("bob", _mono(20))
    mixer.feed("cat", _mono(300))
    mixer.tick()
    heard = {p: int((await _next(ear))[0]) for p, ear in ears.items()}
    assert heard == {"ann": 1000 + 20 + 300, "bob": 1000 + 1 + 300, "cat": 1000 + 1 + 20}
    assert voice.played_samples == FRAME_SAMPLES  # mixed once for everyone
    assert len(mixer.tick_costs_s) == 1 and mixer.tick_costs_s[0] >= 0  # what each tick cost, for the bench


async def test_a_voice_is_played_as_it_is_mixed_and_its_waiters_resolve() -> None:
    mixer = RoomMixer()
    ear = mixer.add_participant("ann")
    voice = mixer.add_voice("innkeeper")
    await voice.write(np.full(FRAME_SAMPLES * 2, 500, dtype=np.int16))
    second = voice.wait_played(FRAME_SAMPLES + 1)
    mixer.tick()
    assert not second.done()
    mixer.tick()
    assert second.done() and second.result() is True
    assert [int((await _next(ear))[0]) for _ in range(2)] == [500, 500]
    mixer.tick()
    assert int((await _next(ear))[0]) == 0  # silence when nobody speaks


async def test_mixing_clips_instead_of_wrapping() -> None:
    mixer = RoomMixer()
    ear = mixer.add_participant("ann")
    for name in ("a", "b"):
        await mixer.add_voice(name).write(np.full(FRAME_SAMPLES, 30000, dtype=np.int16))
    mixer.tick()
    assert int((await _next(ear))[0]) == 32767


async def test_a_mic_ahead_of_the_room_clock_loses_its_oldest_audio() -> None:
    mixer = RoomMixer(max_lag_ms=60)
    ear = mixer.add_participant("ann")
    mixer.add_participant("bob")
    for value in range(1, 11):  # 200 ms at once (a burst after a stall)
        mixer.feed("bob", _mono(value))
    mixer.tick()
    assert int((await _next(ear))[0]) == 8  # only the newest 60 ms are kept: frames 8, 9, 10


async def test_the_relay_delay_is_measured_from_arrival_to_the_tick_that_sent_it() -> None:
    clock = VirtualClock()
    mixer = RoomMixer(clock=clock)
    mixer.add_participant("ann")
    mixer.add_participant("bob")
    clock.now = 1.000
    mixer.feed("bob", _mono(5))
    clock.now = 1.013
    mixer.tick()
    assert list(mixer.relay_delays_s) == [pytest.approx(0.013)]


async def test_run_paces_the_room_at_20_ms() -> None:
    clock = VirtualClock()
    times: list[float] = []
    fifty = asyncio.Event()

    def on_tick() -> None:
        times.append(clock.now)
        if len(times) == 50:
            fifty.set()

    mixer = RoomMixer(clock=clock, sleep=clock.sleep, on_tick=on_tick)
    mixer.add_participant("ann")
    task = asyncio.create_task(mixer.run())
    await fifty.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert times[:50] == pytest.approx([i * FRAME_SAMPLES / SAMPLE_RATE for i in range(50)])


async def test_a_slow_listener_drops_its_oldest_frames_and_never_holds_the_room() -> None:
    mixer = RoomMixer()
    ear = mixer.add_participant("ann", max_frames=2)
    mixer.add_participant("bob")
    for value in (1, 2, 3):
        mixer.feed("bob", _mono(value))
        mixer.tick()
    assert ear.dropped == 1
    assert [int((await _next(ear))[0]) for _ in range(2)] == [2, 3]


async def test_leaving_ends_the_listeners_track_and_its_mic() -> None:
    mixer = RoomMixer()
    ear = mixer.add_participant("ann")
    mixer.add_participant("bob")
    waiting = asyncio.create_task(ear.recv())
    await asyncio.sleep(0)
    mixer.remove_participant("ann")
    with pytest.raises(MediaStreamError):
        await waiting
    mixer.feed("ann", _mono(1))  # a late frame of someone who left is ignored
    mixer.tick()
    assert mixer.participants == ["bob"]
    with pytest.raises(ValueError, match="already in the room"):
        mixer.add_participant("bob")


def test_any_mic_format_becomes_48k_mono() -> None:
    stereo = PcmFrame(np.array([100, 300] * 480, dtype=np.int16), 48_000, 2)
    assert to_mono_48k(stereo).tolist() == [200] * 480
    narrow = PcmFrame(np.full(320, 50, dtype=np.int16), 16_000, 1)
    assert len(to_mono_48k(narrow)) == 960 and set(to_mono_48k(narrow).tolist()) == {50}
