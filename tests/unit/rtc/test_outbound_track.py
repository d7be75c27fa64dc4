"""The speaker track on a virtual clock: pacing, bounded buffer, clear, and the played counter."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rtc.audio import FRAME_SAMPLES, SAMPLE_RATE, OutboundAudioTrack

pytestmark = pytest.mark.unit


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _tone(ms: int) -> np.ndarray:
    n = SAMPLE_RATE * ms // 1000
    return (np.sin(np.arange(n) * 2 * np.pi * 440 / SAMPLE_RATE) * 10000).astype(np.int16)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def track(clock: VirtualClock) -> OutboundAudioTrack:
    return OutboundAudioTrack(200, clock=clock, sleep=clock.sleep)


async def test_silence_when_idle_and_paced(track: OutboundAudioTrack, clock: VirtualClock) -> None:
    frames = [await track.recv() for _ in range(5)]
    assert all(f.samples == FRAME_SAMPLES and f.sample_rate == SAMPLE_RATE for f in frames)
    assert all(not f.to_ndarray().any() for f in frames)
    assert [f.pts for f in frames] == [0, 960, 1920, 2880, 3840]
    assert clock.slept == pytest.approx([0.02] * 4)
    assert track.played_samples == 0


async def test_written_audio_is_played_in_order(track: OutboundAudioTrack) -> None:
    tone = _tone(100)
    await track.write(tone)
    assert track.written_samples == len(tone)
    assert track.buffered_ms == pytest.approx(100)
    got = np.concatenate([(await track.recv()).to_ndarray().reshape(-1) for _ in range(6)])
    assert np.array_equal(got[: len(tone)], tone)
    assert not got[len(tone) :].any()
    assert track.played_samples == len(tone)


async def test_writer_waits_while_buffer_is_full(track: OutboundAudioTrack) -> None:
    writer = asyncio.create_task(track.write(_tone(500)))
    await asyncio.sleep(0)  # let the writer fill the buffer (no time passes on this clock)
    assert not writer.done()
    assert track.buffered_ms == pytest.approx(200)
    frames = 0
    while not writer.done():
        await track.recv()
        frames += 1
        await asyncio.sleep(0)
        assert track.buffered_ms <= 200
    assert frames >= (500 - 200) // 20


async def test_clear_drops_unplayed_audio_and_wakes_waiters(track: OutboundAudioTrack) -> None:
    await track.write(_tone(200))
    first = track.wait_played(FRAME_SAMPLES)
    last = track.wait_played(track.written_samples)
    await track.recv()
    assert first.done() and first.result() is True
    assert not last.done()
    dropped = track.clear()
    assert dropped == SAMPLE_RATE * 200 // 1000 - FRAME_SAMPLES
    assert last.done() and last.result() is False
    assert track.written_samples == track.played_samples == FRAME_SAMPLES
    assert not (await track.recv()).to_ndarray().any()  # silence right after clear()


async def test_write_rejects_wrong_format(track: OutboundAudioTrack) -> None:
    with pytest.raises(ValueError, match="int16"):
        await track.write(np.zeros(10, dtype=np.float32))  # type: ignore[arg-type]
