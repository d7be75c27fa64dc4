"""Mix-minus for a room hosted by this server: everyone hears everyone else, never themself.

    participant mics ──feed()──► per-participant jitter buffer (≤ 60 ms) ─┐
    character voices (VoiceBuffer, one each) ─────────────────────────────┼─► every 20 ms, for each listener:
                                                                          │   the voices + every *other* mic
                                                                          └─► MixedTrack (the listener's
                                                                              outbound aiortc track)

One clock paces the whole room (``run``; ``tick`` is one step, which tests drive): each tick takes 20 ms
from every voice (so a character's ``played_samples`` is what every listener was sent) and from every mic
buffer, and pushes one frame into every listener's track. A mic frame waits at most one tick plus what
its buffer holds; a buffer that grows past ``max_lag_ms`` (a mic faster than the room's clock, or a burst
after a network stall) drops its oldest audio, so the relay delay stays bounded. ``relay_delays_s`` keeps
the measured delay from a mic frame's arrival to the tick that sent it.

The seam for other hosts: a room needs, per participant, a mic (frames in) and an ear (frames out), and per
character a VoiceBuffer. Here the mixer connects them; under an SFU (Janus, LiveKit, a Discord voice
channel) the SFU forwards the people to each other and the server joins as one more participant that
publishes the characters' voices (the mix of the VoiceBuffers with no mic in it) and subscribes to each
person's track.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rtc.audio import FRAME_SAMPLES, SAMPLE_RATE, Clock, PcmFrame, SentTap, Sleep, VoiceBuffer, audio_frame, pull

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


class MixedTrack(MediaStreamTrack):
    """A listener's outbound audio: the frames its room's mixer pushes, in order, paced by the mixer.
    A listener that does not keep up loses its oldest frames (``dropped``), never delays the room."""

    kind = "audio"

    def __init__(self, max_frames: int = 5) -> None:
        super().__init__()
        self._frames: collections.deque[npt.NDArray[np.int16]] = collections.deque(maxlen=max_frames)
        self._ready = asyncio.Event()
        self._pts = 0
        self.dropped = 0
        self.on_sent: SentTap | None = None  # every frame as it is sent (what the listener will hear)

    def push(self, samples: npt.NDArray[np.int16]) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(samples)
        self._ready.set()

    async def recv(self) -> av.AudioFrame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        samples = self._frames.popleft()
        if self.on_sent is not None:
            self.on_sent(samples)
        frame = audio_frame(samples, self._pts)
        self._pts += FRAME_SAMPLES
        return frame

    def stop(self) -> None:
        super().stop()
        self._ready.set()  # a recv() waiting for the next frame ends


class _Mic:
    def __init__(self) -> None:
        self.samples: collections.deque[npt.NDArray[np.int16]] = collections.deque()
        self.arrivals: collections.deque[tuple[int, float]] = collections.deque()  # (end sample, arrival)
        self.buffered = 0
        self.taken = 0  # samples taken so far (the start of the buffer, counted from the first fed)
        self.fed = 0


class RoomMixer:
    """The room's mix-minus: listeners (each with its mic and its MixedTrack) and voices (characters)."""

    def __init__(
        self,
        *,
        max_lag_ms: int = 60,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self._max_lag = SAMPLE_RATE * max_lag_ms // 1000
        self._clock = clock
        self._sleep = sleep
        self._on_tick = on_tick
        self._mics: dict[str, _Mic] = {}
        self._ears: dict[str, MixedTrack] = {}
        self.voices: dict[str, VoiceBuffer] = {}
        self.relay_delays_s: collections.deque[float] = collections.deque(maxlen=10_000)
        self.tick_costs_s: collections.deque[float] = collections.deque(maxlen=10_000)  # CPU time of each tick
        self.ticks = 0

    # ---- who is in the room -------------------------------------------------------------------------------------

    def add_participant(self, participant: str, max_frames: int = 5) -> MixedTrack:
        """A person joins: their outbound track (what they hear) is returned; feed their mic with ``feed``."""
        if participant in self._ears:
            raise ValueError(f"{participant!r} is already in the room")
        ear = MixedTrack(max_frames)
        self._ears[participant] = ear
        self._mics[participant] = _Mic()
        return ear

    def remove_participant(self, participant: str) -> None:
        ear = self._ears.pop(participant, None)
        self._mics.pop(participant, None)
        if ear is not None:
            ear.stop()

    def add_voice(self, character: str, buffer_ms: int = 200) -> VoiceBuffer:
        """A character's voice, heard by every participant (its VoiceBuffer is the character's speaker)."""
        if character in self.voices:
            raise ValueError(f"{character!r} already has a voice in the room")
        self.voices[character] = voice = VoiceBuffer(buffer_ms)
        return voice

    def remove_voice(self, character: str) -> None:
        voice = self.voices.pop(character, None)
        if voice is not None:
            voice.clear()

    @property
    def participants(self) -> list[str]:
        return list(self._ears)

    def dropped_frames(self) -> dict[str, int]:
        """Per listener, the frames its track dropped because its peer did not keep up."""
        return {p: ear.dropped for p, ear in self._ears.items()}

    # ---- audio ------------------------------------------------------------------------------------------------

    def feed(self, participant: str, frame: PcmFrame) -> None:
        """A participant's microphone audio as it arrives (any rate, any channels: made 48 kHz mono here)."""
        mic = self._mics.get(participant)
        if mic is None:
            return
        pcm = to_mono_48k(frame)
        if not len(pcm):
            return
        mic.samples.append(pcm)
        mic.buffered += len(pcm)
        mic.fed += len(pcm)
        mic.arrivals.append((mic.fed, self._clock()))
        while mic.buffered > self._max_lag:  # too far behind the room's clock: the oldest audio gives way
            head = mic.samples[0]
            cut = min(len(head), mic.buffered - self._max_lag)
            if cut == len(head):
                mic.samples.popleft()
            else:
                mic.samples[0] = head[cut:]
            self._advance(mic, cut, None)

    def tick(self) -> None:
        """One 20 ms step: every voice and mic gives 20 ms; every listener gets the mix of the others."""
        started = time.perf_counter()
        now = self._clock()
        voices = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        for voice in self.voices.values():
            voices += voice.take(FRAME_SAMPLES)
        mics = {p: self._take(mic, now) for p, mic in self._mics.items()}
        everyone = voices + sum((m for m in mics.values()), np.zeros(FRAME_SAMPLES, dtype=np.int32))
        for participant, ear in self._ears.items():
            mine = mics.get(participant)
            mix = everyone - mine if mine is not None else everyone
            ear.push(np.clip(mix, -32768, 32767).astype(np.int16))
        self.ticks += 1
        self.tick_costs_s.append(time.perf_counter() - started)
        if self._on_tick is not None:
            self._on_tick()

    async def run(self) -> None:
        """Tick every 20 ms on the room's clock, until cancelled. Late ticks catch up (the clock never drifts)."""
        start, n = self._clock(), 0
        while True:
            self.tick()
            n += 1
            wait = start + n * FRAME_S - self._clock()
            if wait > 0:
                await self._sleep(wait)
            elif wait < -0.2:  # the loop was stalled (a blocked event loop): start the schedule again
                start, n = self._clock(), 0
            else:
                await asyncio.sleep(0)

    def _take(self, mic: _Mic, now: float) -> npt.NDArray[np.int32]:
        out = np.zeros(FRAME_SAMPLES, dtype=np.int32)
        self._advance(mic, pull(mic.samples, out), now)
        return out

    def _advance(self, mic: _Mic, samples: int, sent_at: float | None) -> None:
        """``samples`` left ``mic``'s buffer: sent in the tick at ``sent_at`` (the relay delay of each frame that
        was not all sent before is recorded), or dropped (None)."""
        start = mic.taken
        mic.buffered -= samples
        mic.taken += samples
        while mic.arrivals and mic.arrivals[0][0] <= mic.taken:
            end, arrived = mic.arrivals.popleft()
            if sent_at is not None and end > start:
                self.relay_delays_s.append(sent_at - arrived)


def to_mono_48k(frame: PcmFrame) -> npt.NDArray[np.int16]:
    """Interleaved s16 of any rate and channel count as 48 kHz mono (averaged channels, linear resampling)."""
    samples: npt.NDArray[np.float64] = frame.samples.astype(np.float64).reshape(-1, frame.channels).mean(axis=1)
    if frame.sample_rate != SAMPLE_RATE and len(samples):
        n = round(len(samples) * SAMPLE_RATE / frame.sample_rate)
        samples = np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples)
    out: npt.NDArray[np.int16] = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    return out
