"""The two audio edges of a session, each bounded with a named policy.

- ``InboundAudio``: reads the remote track into a bounded queue that **drops the oldest** audio when the
  consumer falls behind (a late utterance is worth less than a current one), counting what it dropped.
- ``VoiceBuffer``: a voice's unplayed audio. The producer ``write()``s 48 kHz mono s16 PCM into a buffer of
  about 200 ms and waits while it is full, so ``clear()`` (barge-in) silences the character within that
  bound. It counts the samples actually taken for playout, so the conversation knows what was played
  (``played_samples``, ``wait_played``).
- ``OutboundAudioTrack``: a pull-based aiortc track paced at 20 ms that plays one VoiceBuffer (a 1:1
  session). A room plays its characters' buffers through the mixer (``rtc.mixer``).
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


@dataclass(frozen=True)
class PcmFrame:
    """Interleaved signed 16-bit PCM as received: ``samples`` has ``frames * channels`` values."""

    samples: npt.NDArray[np.int16]
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.channels / self.sample_rate


def pcm_from_av(frame: av.AudioFrame) -> PcmFrame:
    """An av frame (packed or planar, s16 or float) as interleaved s16."""
    channels = len(frame.layout.channels)
    data = frame.to_ndarray()
    if frame.format.is_planar:
        data = data.T.reshape(-1)  # (channels, n) -> interleaved
    else:
        data = data.reshape(-1)
    if data.dtype != np.int16:
        data = (np.clip(data.astype(np.float32), -1.0, 1.0) * 32767.0).astype(np.int16)
    return PcmFrame(np.ascontiguousarray(data), frame.sample_rate, channels)


class InboundAudio:
    """Pulls a remote audio track into a bounded queue; ``frames()`` yields what arrives.

    Policy: drop oldest. ``max_frames`` 20 ms frames are kept (default 5 s); ``dropped`` counts the rest.
    """

    def __init__(self, track: MediaStreamTrack, max_frames: int = 250) -> None:
        self._track = track
        self._queue: collections.deque[PcmFrame] = collections.deque(maxlen=max_frames)
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0
        self.received = 0
        self._task = asyncio.create_task(self._pump(), name="rtc-inbound-audio")

    async def _pump(self) -> None:
        try:
            while True:
                frame = await self._track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                pcm = pcm_from_av(frame)
                if len(self._queue) == self._queue.maxlen:
                    self.dropped += 1
                self._queue.append(pcm)
                self.received += 1
                self._ready.set()
        except MediaStreamError:
            pass  # the remote track ended
        finally:
            self._ended = True
            self._ready.set()

    async def frames(self) -> AsyncIterator[PcmFrame]:
        while True:
            while self._queue:
                yield self._queue.popleft()
            if self._ended:
                return
            self._ready.clear()
            await self._ready.wait()

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class VoiceBuffer:
    """A voice's unplayed audio: 48 kHz mono s16, about ``buffer_ms`` deep. The producer ``write()``s and waits
    while it is full (so ``clear()``, the barge-in, silences it within that bound); the playout ``take()``s
    20 ms at a time and counts what it took (``played_samples``, ``wait_played``). A session's speaker track
    plays one; a room's mixer plays one per character into every listener's mix."""

    def __init__(self, buffer_ms: int = 200) -> None:
        self._capacity = SAMPLE_RATE * buffer_ms // 1000
        self._buffer = collections.deque[npt.NDArray[np.int16]]()
        self._buffered = 0
        self._space = asyncio.Event()
        self._space.set()
        self.written_samples = 0  # everything accepted by write(), minus what clear() dropped
        self.played_samples = 0  # everything taken for playout
        # the stream's own clock, silence included: samples handed to playout, and where the last written sample
        # will play (a voice that ran dry between two sentences left silence on the stream between them)
        self.taken_samples = 0
        self._tail = 0
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self.paused = False  # playout holds where it is (silence goes out, nothing buffered is lost)

    @property
    def buffered_ms(self) -> float:
        return self._buffered * 1000 / SAMPLE_RATE

    @property
    def next_position(self) -> int:
        """Where on the stream's clock (``taken_samples``, silence included) the next sample written will
        play: after what is buffered, or at the next frame when the buffer ran dry."""
        return max(self._tail, self.taken_samples)

    async def write(self, pcm: npt.NDArray[np.int16]) -> None:
        """Queue 48 kHz mono s16 audio; waits while the buffer is full (the producer is paced)."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError("write() takes a 1-D int16 array of 48 kHz mono samples")
        offset = 0
        while offset < len(pcm):
            while self._buffered >= self._capacity:
                self._space.clear()
                await self._space.wait()
            take = min(len(pcm) - offset, self._capacity - self._buffered)
            self._tail = self.next_position + take
            self._buffer.append(pcm[offset : offset + take])
            self._buffered += take
            self.written_samples += take
            offset += take

    def clear(self) -> int:
        """Drop everything not yet played (barge-in). Returns how many samples were dropped."""
        dropped = self._buffered
        self._buffer.clear()
        self._buffered = 0
        self.written_samples -= dropped
        self._tail = self.taken_samples
        self._space.set()
        for _, fut in self._waiters:  # every waiter left is beyond what was played
            if not fut.done():
                fut.set_result(False)
        self._waiters.clear()
        return dropped

    def wait_played(self, sample_index: int) -> asyncio.Future[bool]:
        """Resolves True once playback reaches ``sample_index`` (in ``written_samples`` units), False if the
        audio before it is cleared first. Wait only for indices already written or about to be."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if sample_index <= self.played_samples:
            fut.set_result(True)
        else:
            self._waiters.append((sample_index, fut))
        return fut

    def pause(self) -> None:
        """Hold playout where it is: silence goes out, what is buffered waits (someone began to speak)."""
        self.paused = True

    def resume(self) -> None:
        """Play on from where it was held."""
        self.paused = False

    def take(self, n: int) -> npt.NDArray[np.int16]:
        """The next ``n`` samples for playout (silence where there is nothing to say, or while paused)."""
        out = np.zeros(n, dtype=np.int16)
        if self.paused:
            self.taken_samples += n
            if self._buffered:
                self._tail += n  # what is buffered plays that much later on the stream's clock
            return out
        filled = pull(self._buffer, out)
        self._buffered -= filled
        self.played_samples += filled
        self.taken_samples += n
        if filled:
            self._space.set()
            if self._waiters:
                still = []
                for index, fut in self._waiters:
                    if fut.done():
                        continue
                    if index <= self.played_samples:
                        fut.set_result(True)
                    else:
                        still.append((index, fut))
                self._waiters = still
        return out


def pull(chunks: collections.deque[npt.NDArray[np.int16]], out: npt.NDArray[Any]) -> int:
    """Move samples from the front of ``chunks`` into ``out`` until it is full or they run out; how many."""
    filled = 0
    while filled < len(out) and chunks:
        head = chunks[0]
        take = min(len(out) - filled, len(head))
        out[filled : filled + take] = head[:take]
        if take == len(head):
            chunks.popleft()
        else:
            chunks[0] = head[take:]
        filled += take
    return filled


def audio_frame(samples: npt.NDArray[np.int16], pts: int) -> av.AudioFrame:
    """20 ms of 48 kHz mono s16 as an av frame at ``pts`` (in samples)."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = _TIME_BASE
    return frame


SentTap = Callable[[npt.NDArray[np.int16]], None]  # 20 ms of 48 kHz mono s16, as it leaves for the peer


class OutboundAudioTrack(MediaStreamTrack):
    """48 kHz mono audio to the peer, paced at 20 ms: one voice (a ``VoiceBuffer``), silence when it is quiet."""

    kind = "audio"

    def __init__(self, buffer_ms: int = 200, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        super().__init__()
        self.voice = VoiceBuffer(buffer_ms)
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._pts = 0
        self.on_sent: SentTap | None = None  # every frame as it is sent (what the peer will hear)

    @property
    def written_samples(self) -> int:
        return self.voice.written_samples

    @property
    def played_samples(self) -> int:
        return self.voice.played_samples

    @property
    def next_position(self) -> int:
        return self.voice.next_position

    @property
    def taken_samples(self) -> int:
        return self.voice.taken_samples

    @property
    def buffered_ms(self) -> float:
        return self.voice.buffered_ms

    async def write(self, pcm: npt.NDArray[np.int16]) -> None:
        await self.voice.write(pcm)

    def clear(self) -> int:
        return self.voice.clear()

    def pause(self) -> None:
        self.voice.pause()

    def resume(self) -> None:
        self.voice.resume()

    def wait_played(self, sample_index: int) -> asyncio.Future[bool]:
        return self.voice.wait_played(sample_index)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = self._clock()
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / SAMPLE_RATE - self._clock()
            if wait > 0:
                await self._sleep(wait)
        samples = self.voice.take(FRAME_SAMPLES)
        if self.on_sent is not None:
            self.on_sent(samples)
        return audio_frame(samples, self._pts)

    def stop(self) -> None:
        self.clear()
        super().stop()
