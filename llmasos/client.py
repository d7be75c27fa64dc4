"""A Python voice client for an LLMasOS server: a real aiortc peer with a microphone you feed and a speaker
you can measure. Used by the tests and by `llmasos bench latency`; also a starting point for bots.

    async with VoiceClient.connect("http://127.0.0.1:8000", character="blacksmith", player="ann") as c:
        await c.say(pcm_48k_mono)                  # speak (paced in real time), then silence
        await c.wait_for("transcript", final=True)
        await c.wait_for("reply", final=True)

The microphone sends silence when there is nothing to say, like a real one. Received audio is tracked per
20 ms frame with its arrival time, so voice-to-voice latency is measured where the user is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import av
import httpx
import numpy as np
import numpy.typing as npt
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rtc.loopback import allow_loopback_candidates

RATE = 48_000
FRAME = 960  # 20 ms
_TIME_BASE = fractions.Fraction(1, RATE)
LOUD = 300.0  # mean absolute amplitude (s16) above which a received frame counts as voice


@dataclass(frozen=True)
class EchoLoop:
    """What a headset without echo cancellation does: the audio it plays comes back into its microphone,
    ``delay_ms`` later, ``gain_db`` quieter, with the room's noise (``noise_db`` below full scale)."""

    delay_ms: int = 100
    gain_db: float = -6.0
    noise_db: float = -50.0


class MicTrack(MediaStreamTrack):
    """A microphone fed by ``say()``: real-time paced 20 ms frames, silence in between. With an ``echo`` loop,
    what the client plays comes back into it (``hear()``)."""

    kind = "audio"

    def __init__(self, echo: EchoLoop | None = None) -> None:
        super().__init__()
        self.echo = echo
        self._back = collections.deque[npt.NDArray[np.int16]]()  # played audio on its way back, 20 ms pieces
        if echo is not None:
            self._back.extend(np.zeros(FRAME, dtype=np.int16) for _ in range(echo.delay_ms * RATE // 1000 // FRAME))
        self._noise = np.random.default_rng(0)
        self._queue: collections.deque[npt.NDArray[np.int16]] = collections.deque()
        self._pts = 0
        self._start: float | None = None
        self.speech_end_at: float | None = None  # monotonic time the last queued speech sample was sent
        self.speech_start_at: float | None = None  # monotonic time the first sample of the last speech was sent
        self._starting = False  # the next frame sent is the first of new speech
        self._drained = asyncio.Event()
        self._drained.set()

    def say(self, pcm: npt.NDArray[np.int16]) -> None:
        self._starting = self._starting or not self._queue
        for i in range(0, len(pcm), FRAME):
            piece = pcm[i : i + FRAME]
            if len(piece) < FRAME:
                piece = np.concatenate([piece, np.zeros(FRAME - len(piece), dtype=np.int16)])
            self._queue.append(piece)
        self._drained.clear()

    async def drained(self) -> None:
        await self._drained.wait()

    def hear(self, played: npt.NDArray[np.int16]) -> None:
        """The client played ``played`` (48 kHz mono): with an echo loop, it comes back into the microphone."""
        if self.echo is not None:
            self._back.append(played)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            wait = self._start + self._pts / RATE - now
            if wait > 0:
                await asyncio.sleep(wait)  # real-time pacing of a microphone
        if self._queue:
            samples = self._queue.popleft()
            if self._starting:
                self._starting = False
                self.speech_start_at = time.monotonic()
            if not self._queue:
                self.speech_end_at = time.monotonic() + FRAME / RATE
                self._drained.set()
        else:
            samples = np.zeros(FRAME, dtype=np.int16)
        if self.echo is not None:
            samples = self._with_echo(samples)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = _TIME_BASE
        self._pts += FRAME
        return frame

    def _with_echo(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        assert self.echo is not None
        back = self._back.popleft() if self._back else np.zeros(FRAME, dtype=np.int16)
        if len(back) != FRAME:
            back = np.resize(back, FRAME) if len(back) else np.zeros(FRAME, dtype=np.int16)
        mixed = samples.astype(np.float32) + back.astype(np.float32) * 10 ** (self.echo.gain_db / 20)
        mixed += self._noise.standard_normal(FRAME).astype(np.float32) * 32767 * 10 ** (self.echo.noise_db / 20)
        return np.clip(mixed, -32768, 32767).astype(np.int16)


@dataclass
class Received:
    """The character's voice as the client receives it: (monotonic arrival time, mean |amplitude|) per frame."""

    frames: list[tuple[float, float]] = field(default_factory=list)
    keep_pcm: bool = False  # also keep each frame's samples (mono s16): `llmasos bench sync` reads them
    pcm: list[tuple[float, npt.NDArray[np.int16]]] = field(default_factory=list)

    def first_loud_after(self, t: float, threshold: float = LOUD) -> float | None:
        for at, level in self.frames:
            if at >= t and level > threshold:
                return at
        return None

    def last_loud(self, threshold: float = LOUD) -> float | None:
        for at, level in reversed(self.frames):
            if level > threshold:
                return at
        return None

    def loud_seconds(self, since: float = 0.0, threshold: float = LOUD) -> float:
        return sum(FRAME / RATE for at, level in self.frames if at >= since and level > threshold)


class ClientError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class VoiceClient:
    def __init__(self, pc: RTCPeerConnection, mic: MicTrack) -> None:
        self.pc = pc
        self.mic = mic
        self.session = ""
        self.resumed = False  # the server went on with the conversation of the session named in `resume`
        self.events: list[tuple[float, dict[str, Any]]] = []  # (monotonic arrival, message)
        self.received = Received()
        self._new_event = asyncio.Condition()
        self._channel = pc.createDataChannel("events")
        self._channel.on("message", self._on_message)
        self._open = asyncio.Event()
        self._channel.on("open", self._open.set)
        self._reader: asyncio.Task[None] | None = None
        self._frame_arrived = asyncio.Event()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self._reader is None:
                self._reader = asyncio.create_task(self._read_audio(track))

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        character: str | None = None,
        player: str,
        room: str | None = None,
        name: str | None = None,
        greet: bool = True,
        resume: str | None = None,
        timeout_s: float = 30.0,
        http: httpx.AsyncClient | None = None,
        echo: EchoLoop | None = None,
    ) -> VoiceClient:
        """A 1:1 session with ``character``, or (``room``) a place in a room, as ``name``; ``greet``: false, the
        character does not greet; ``resume``: a session of this player with ``character`` that ended recently,
        whose conversation goes on; ``echo``: what the client plays comes back into its microphone."""
        host = httpx.URL(base_url).host
        if host in ("localhost", "127.0.0.1", "::1"):
            allow_loopback_candidates()  # the server may be reachable on loopback only
        pc = RTCPeerConnection()
        mic = MicTrack(echo)
        pc.addTrack(mic)
        client = cls(pc, mic)
        try:
            await pc.setLocalDescription(await pc.createOffer())  # gathers ICE before returning
            body: dict[str, Any] = {"sdp": pc.localDescription.sdp, "type": "offer", "player": player}
            if not greet:
                body["greet"] = False
            if resume is not None:
                body["resume"] = resume
            if room is not None:
                body.update(room=room, name=name or player)
            elif character is not None:
                body["character"] = character
            async with contextlib.AsyncExitStack() as stack:
                if http is None:
                    http = await stack.enter_async_context(httpx.AsyncClient(timeout=timeout_s))
                res = await http.post(f"{base_url.rstrip('/')}/rtc/offer", json=body)
            data = res.json()
            if res.status_code != 200:
                err = data.get("error", {})
                raise ClientError(res.status_code, err.get("code", "?"), err.get("message", res.text))
            client.session = data["session"]
            client.resumed = bool(data.get("resumed"))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
            await asyncio.wait_for(client._open.wait(), timeout_s)
        except BaseException:
            await pc.close()
            raise
        return client

    async def __aenter__(self) -> VoiceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- input -------------------------------------------------------------------------------------------------

    async def say(self, pcm: npt.NDArray[np.int16], *, wait: bool = True) -> float:
        """Speak 48 kHz mono s16 audio; returns the monotonic time its last sample was sent."""
        self.mic.say(pcm)
        if wait:
            await self.mic.drained()
        return self.mic.speech_end_at or time.monotonic()

    def send_text(self, text: str) -> None:
        self.send({"type": "text", "text": text})

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        self._channel.send(message if isinstance(message, str | bytes) else json.dumps(message))

    # ---- output ------------------------------------------------------------------------------------------------

    def _on_message(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        self.events.append((time.monotonic(), message))
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._new_event:
            self._new_event.notify_all()

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                samples = frame.to_ndarray()
                level = float(np.abs(samples.astype(np.float32)).mean())
                now = time.monotonic()
                self.received.frames.append((now, level))
                if self.received.keep_pcm or self.mic.echo is not None:  # the first channel of interleaved samples
                    mono = samples.reshape(-1)[:: len(frame.layout.channels)].astype(np.int16)
                    self.mic.hear(mono)
                    if self.received.keep_pcm:
                        self.received.pcm.append((now, mono))
                self._frame_arrived.set()

    def of_type(self, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [m for at, m in self.events if m.get("type") == kind and at >= since]

    async def wait_for(
        self,
        kind: str,
        *,
        since: float = 0.0,
        timeout_s: float = 60.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        **fields: Any,
    ) -> tuple[float, dict[str, Any]]:
        """The first event of ``kind`` (arrived at or after ``since``) whose fields match; (arrival, message)."""

        def match() -> tuple[float, dict[str, Any]] | None:
            for at, m in self.events:
                if at < since or m.get("type") != kind:
                    continue
                if all(m.get(k) == v for k, v in fields.items()) and (where is None or where(m)):
                    return at, m
            return None

        async def wait() -> tuple[float, dict[str, Any]]:
            async with self._new_event:
                while (found := match()) is None:
                    await self._new_event.wait()
                return found

        return await asyncio.wait_for(wait(), timeout_s)

    async def wait_loud(self, seconds: float, *, since: float = 0.0, timeout_s: float = 60.0) -> None:
        """Until ``seconds`` of the character's voice have arrived since ``since``."""

        async def wait() -> None:
            while self.received.loud_seconds(since) < seconds:
                self._frame_arrived.clear()
                await self._frame_arrived.wait()

        await asyncio.wait_for(wait(), timeout_s)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.pc.close()
