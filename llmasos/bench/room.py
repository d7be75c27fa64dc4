"""`llmasos bench room`: a room of real WebRTC peers on loopback, through the server's mix-minus.

Measured now: the relay delay the server adds (a participant's microphone frame, from its arrival at the
server to the 20 ms tick that sends it in the others' mix), the mixer's CPU per tick, and what each listener
hears (the others and the character, not itself), for 1, 2 and 4 of 4 participants speaking while a
character speaks. Voice-to-voice for addressed utterances and the addressing score on a scripted set join
this bench when rooms are joined over `POST /rtc/offer` (issue "Rooms").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import platform
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from llmasos.settings import Settings
from rtc import PeerOptions, PeerSession
from rtc.audio import pcm_from_av
from rtc.mixer import RoomMixer, to_mono_48k

VOICE_HZ = 2500.0  # the character's "voice" (a tone: the mixer is measured, not speech)
_HZ = (300.0, 700.0, 1100.0, 1500.0)


class ToneMic(MediaStreamTrack):
    """A microphone that sings one frequency (silence for ``hz = 0``), paced in real time like a real one."""

    kind = "audio"

    def __init__(self, hz: float) -> None:
        super().__init__()
        self._hz, self._pts, self._start = hz, 0, 0.0

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._pts == 0:
            self._start = loop.time()
        wait = self._start + self._pts / 48000 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)  # real-time pacing of a media source
        t = (np.arange(960) + self._pts) / 48000
        samples = (np.sin(2 * np.pi * self._hz * t) * 6000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self._pts, fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


def level(audio: npt.NDArray[np.float32], hz: float) -> float:
    """The amplitude of ``hz`` in 48 kHz ``audio``."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) / len(audio)
    bin_ = int(round(hz * len(audio) / 48000))
    return float(spectrum[max(0, bin_ - 2) : bin_ + 3].max())


@dataclass
class PeerRoom:
    """Participants as real aiortc client peers, each answered by a server PeerSession that hears the mix."""

    mixer: RoomMixer
    tones: dict[str, float]
    heard: dict[str, list[npt.NDArray[np.float32]]] = field(default_factory=dict)
    tick_s: list[float] = field(default_factory=list)

    def audio(self, participant: str, frames: int) -> npt.NDArray[np.float32]:
        return np.concatenate(self.heard[participant][-frames:])


@contextlib.asynccontextmanager
async def peer_room(tones: dict[str, float], frames: int, voice_s: float = 0.0) -> AsyncIterator[PeerRoom]:
    """A room of ``tones`` (participant -> microphone frequency, 0 for a silent one), with a character that
    speaks ``voice_s`` seconds of its tone; entered once every client has heard ``frames`` frames (after
    0.5 s for the codecs to settle)."""
    room = PeerRoom(RoomMixer(), tones, {p: [] for p in tones})
    timed = room.mixer.tick

    def tick() -> None:
        t0 = time.perf_counter()
        timed()
        room.tick_s.append(time.perf_counter() - t0)

    room.mixer.tick = tick  # type: ignore[method-assign]
    done = {p: asyncio.Event() for p in tones}
    tasks: list[asyncio.Task[Any]] = []
    clients: list[RTCPeerConnection] = []
    sessions: list[PeerSession] = []

    async def listen(participant: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.AudioFrame):
                    room.heard[participant].append(to_mono_48k(pcm_from_av(frame)).astype(np.float32))
                    if len(room.heard[participant]) >= frames + 25:
                        done[participant].set()

    async def feed(participant: str, session: PeerSession) -> None:
        async for frame in session.audio_frames():
            room.mixer.feed(participant, frame)

    try:
        for participant, hz in tones.items():
            client = RTCPeerConnection()
            client.addTrack(ToneMic(hz))
            client.createDataChannel("events")
            remote: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
            client.on("track", lambda track, remote=remote: remote.done() or remote.set_result(track))
            await client.setLocalDescription(await client.createOffer())
            ear = room.mixer.add_participant(participant)
            session = await PeerSession.accept(client.localDescription.sdp, PeerOptions(allow_loopback=True), ear)
            assert session.answer is not None
            await client.setRemoteDescription(session.answer)
            track = await asyncio.wait_for(remote, 10)
            clients.append(client)
            sessions.append(session)
            tasks += [asyncio.create_task(listen(participant, track)), asyncio.create_task(feed(participant, session))]
        if voice_s > 0:
            t = np.arange(int(48000 * voice_s)) / 48000
            tone = (np.sin(2 * np.pi * VOICE_HZ * t) * 6000).astype(np.int16)
            tasks.append(asyncio.create_task(room.mixer.add_voice("character").write(tone)))
        tasks.append(asyncio.create_task(room.mixer.run()))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), 60 + frames / 25)
        yield room
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for session in sessions:
            await session.close()
        for client in clients:
            await client.close()


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else float("nan")


async def _measure(speakers: int, participants: int, seconds: float) -> dict[str, Any]:
    tones = {f"p{i}": (_HZ[i] if i < speakers else 0.0) for i in range(participants)}
    frames = int(seconds * 50)
    async with peer_room(tones, frames, voice_s=seconds + 5) as room:
        delays = list(room.mixer.relay_delays_s)
        ticks = room.tick_s[50:]  # after the first second
        leak, heard_others = 0.0, []
        for listener in tones:
            audio = room.audio(listener, frames)
            others = [level(audio, hz) for p, hz in tones.items() if p != listener and hz]
            heard_others += others
            own = level(audio, tones[listener]) if tones[listener] else 0.0
            leak = max(leak, own / max(min(others), 1e-9) if others else 0.0)
        character = min(level(room.audio(p, frames), VOICE_HZ) for p in tones)
        return {
            "participants": participants,
            "speakers": speakers,
            "relay_delay_ms": {"p50": _ms(delays, 50), "p95": _ms(delays, 95), "max": _ms(delays, 100)},
            "relayed_frames": len(delays),
            "mixer_tick_ms": {"p50": _ms(ticks, 50), "p95": _ms(ticks, 95)},
            "heard_others_min": round(min(heard_others), 1) if heard_others else None,
            "heard_character_min": round(character, 1),
            "own_voice_leak_ratio": round(leak, 4),  # own tone level / the weakest other speaker's, worst listener
            "dropped_listener_frames": sum(room.mixer.dropped_frames().values()),
        }


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Room bench: mix-minus relay on loopback",
        "",
        f"{result['machine']}, {result['participants']} real aiortc peers on loopback, a character speaking; "
        f"{result['seconds']} s per row. Relay delay: a microphone frame's arrival at the server to the tick "
        "that sends it in the others' mix (what the server adds; the network and the clients' jitter buffers "
        "come on top).",
        "",
        "| speakers | relay p50 | relay p95 | relay max | mixer tick p95 | own voice leak | dropped frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        r = row["relay_delay_ms"]
        lines.append(
            f"| {row['speakers']} of {row['participants']} | {r['p50']} ms | {r['p95']} ms | {r['max']} ms | "
            f"{row['mixer_tick_ms']['p95']} ms | {row['own_voice_leak_ratio']:.3f} | {row['dropped_listener_frames']} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, settings: Settings) -> int:
    speakers = [int(s) for s in args.speakers.split(",") if s.strip()]
    participants = max(max(speakers), args.participants)

    async def main() -> list[dict[str, Any]]:
        return [await _measure(n, participants, args.seconds) for n in speakers]

    rows = asyncio.run(main())
    result = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "participants": participants,
        "seconds": args.seconds,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    args.markdown.write_text(_markdown(result), encoding="utf-8")
    print(_markdown(result))
    return 0
