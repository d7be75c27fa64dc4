"""`llmasos bench room`: a room of real WebRTC peers on loopback, through the server's mix-minus.

Measured: the relay delay the server adds (a participant's microphone frame, from its arrival at the server
to the 20 ms tick that sends it in the others' mix), the mixer's CPU per tick, and what each listener hears
(the others and the character, not itself), for 1, 2 and 4 of 4 participants speaking while a character
speaks; and whom utterances are for, on a scripted set spoken by the packaged voice (two styles) and by
espeak-ng, recognised by Whisper and decided by the room's policy: wrongly answered (nobody, or someone else,
was meant) and wrongly ignored (a character was meant). Voice-to-voice for addressed utterances in a room of
several clients joins this bench next.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import platform
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from llmasos.metrics import STAGES, stage_seconds
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

    def audio(self, participant: str, frames: int) -> npt.NDArray[np.float32]:
        return np.concatenate(self.heard[participant][-frames:])


@contextlib.asynccontextmanager
async def peer_room(tones: dict[str, float], frames: int, voice_s: float = 0.0) -> AsyncIterator[PeerRoom]:
    """A room of ``tones`` (participant -> microphone frequency, 0 for a silent one), with a character that
    speaks ``voice_s`` seconds of its tone; entered once every client has heard ``frames`` frames (after
    0.5 s for the codecs to settle)."""
    room = PeerRoom(RoomMixer(), tones, {p: [] for p in tones})
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
        ticks = list(room.mixer.tick_costs_s)[50:]  # after the first second
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
    v = result.get("voice_to_voice")
    if v:
        lines += [
            "",
            "Voice-to-voice for addressed utterances in the tavern (two characters, the real models), at the "
            "asking client: the end of its speech to the first sound of the reply.",
            "",
            "| speakers | participants | turns | p50 | p95 | max | unanswered |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in v:
            t = row["v2v_s"]
            lines.append(
                f"| {row['speakers']} | {row['participants']} | {row['measured']} | {t['p50']} s | {t['p95']} s | "
                f"{t['max']} s | {row['unanswered']} |"
            )
        names = [stage for stage in STAGES if any(stage in row.get("stages_p50_s", {}) for row in v)]
        if names:
            lines += ["", "The server's timeline of the same turns, p50 per stage (s):", ""]
            lines += ["| speakers | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            for row in v:
                got = row.get("stages_p50_s", {})
                lines.append(f"| {row['speakers']} | " + " | ".join(str(got.get(n, "")) for n in names) + " |")
    a = result.get("addressing")
    if a:
        plain, prompted = a["plain"], a["prompted"]
        lines += [
            "",
            f"Whom an utterance is for: {plain['utterances']} utterances ({', '.join(plain['voices'])}; "
            f"{plain['meant_a_character']} meant for a character, {plain['meant_nobody']} for nobody), recognised by "
            "Whisper tiny.en, decided by the room's policy; the recogniser as it is, and told the room's names "
            f"({a['prompt']!r}).",
            "",
            "| recogniser | wrongly answered | wrongly ignored |",
            "|---|---|---|",
        ]
        mistakes = []
        for label, r in (("as it is", plain), ("told the room's names", prompted)):
            lines.append(
                f"| {label} | {r['wrongly_answered']} ({r['wrongly_answered_rate']:.1%} of all) | "
                f"{r['wrongly_ignored']} ({r['wrongly_ignored_rate']:.1%} of those meant for a character) |"
            )
            mistakes += [
                f"- {label}, {m['voice']}: said {m['said']!r}, heard {m['heard']!r}: {m['decided']} ({m['reason']})"
                for m in r["mistakes"]
            ]
        lines += mistakes
    return "\n".join(lines) + "\n"


# (who speaks, what, who it is for); in the tavern: Hilda the innkeeper and Brom Ironhand the blacksmith,
# players Ann, Bob and Cat; "answered" lines set up follow-ups: (player, character) answered just before
SCRIPT: list[tuple[str, str, str | None, tuple[str, str] | None]] = [
    ("ann", "Brom, do you have any swords for sale?", "blacksmith", None),
    ("ann", "Good evening, Brom Ironhand.", "blacksmith", None),
    ("bob", "Hilda, a bowl of stew please.", "innkeeper", None),
    ("cat", "Innkeeper, is there a room free tonight?", "innkeeper", None),
    ("bob", "Blacksmith, can you mend my axe?", "blacksmith", None),
    ("ann", "Can you fix this shield, Brom?", "blacksmith", None),
    ("cat", "What is the stew tonight, Hilda?", "innkeeper", None),
    ("bob", "Hilda, is Brom still at the forge?", "innkeeper", None),
    ("ann", "Brom, Hilda says you make the best blades.", "blacksmith", None),
    ("cat", "Mister Ironhand, a word please.", "blacksmith", None),
    ("ann", "How much is the steel one?", "blacksmith", ("ann", "blacksmith")),
    ("bob", "And some bread as well.", "innkeeper", ("bob", "innkeeper")),
    ("cat", "Thank you, that is kind.", "innkeeper", ("cat", "innkeeper")),
    ("ann", "Bob, shall we go to the market?", None, None),
    ("bob", "Cat, did you see the wolves on the road?", None, None),
    ("cat", "Ann, I think we should leave at dawn.", None, None),
    ("ann", "Bob, ask Brom about the swords.", None, None),
    ("bob", "I am so tired after that long walk.", None, None),
    ("cat", "The rain will not stop tonight.", None, None),
    ("ann", "Do you think it will snow tomorrow?", None, None),
    ("bob", "We should watch the road tomorrow.", None, None),
    ("cat", "Is Brom's forge open in the morning?", None, None),
    ("ann", "Hold on, let me find my purse.", None, None),
    ("bob", "Do you have more coins?", None, None),
]


def _addressing(settings: Settings) -> dict[str, Any]:
    from dialogue import scan
    from llmasos.addressing import Addressing, Named, vocabulary
    from llmasos.bench.turn import _espeak
    from llmasos.dialogue_factory import characters_dir
    from llmasos.models import ModelStore
    from llmasos.voice_factory import load_asr, load_tts
    from voice.audio import resample, s16_to_float
    from voice.types import VoiceStyle

    store = ModelStore(settings.data_dir)
    asr, tts = load_asr(settings, store), load_tts(settings, store)
    found, _ = scan(characters_dir(settings))
    tavern = [found["innkeeper"], found["blacksmith"]]
    voices: dict[str, Any] = {
        "piper-joe": tts,
        "piper-joe-high": tts.styled(VoiceStyle(1.05, 1.18)),
    }
    spoken: list[tuple[str, str, str, str | None, tuple[str, str] | None, Any]] = []
    for voice_name in [*voices, "espeak-ng"]:
        for speaker, text, meant, answered in SCRIPT:
            if voice_name == "espeak-ng":
                audio = _espeak(text)
                if audio is None:
                    continue
            else:
                voice = voices[voice_name]
                audio = resample(s16_to_float(voice.synthesize_sync(text)), voice.sample_rate, 16_000)
            spoken.append((voice_name, speaker, text, meant, answered, audio))

    def score(recogniser: Any) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for voice_name, speaker, text, meant, answered, audio in spoken:
            heard = recogniser.transcribe_sync(audio, final=True).text.strip()
            policy = Addressing([Named.character(c) for c in tavern])
            for player, name in (("ann", "Ann"), ("bob", "Bob"), ("cat", "Cat")):
                policy.join(player, name)
            if answered is not None:
                policy.answered(answered[1], answered[0], 0.0)
            decision = policy.decide(speaker, heard, 3.0)
            rows.append(
                {
                    "voice": voice_name,
                    "said": text,
                    "heard": heard,
                    "meant": meant,
                    "decided": decision.character,
                    "reason": decision.reason,
                }  # fmt: skip
            )
        return _scored(rows)

    prompt = vocabulary(tavern, ["Ann", "Bob", "Cat"])  # what the room tells its recogniser, the people in it too
    result = {"plain": score(asr), "prompted": score(asr.with_prompt(prompt)), "prompt": prompt}
    asr.close()
    return result


def _scored(rows: list[dict[str, Any]]) -> dict[str, Any]:
    meant_someone = [r for r in rows if r["meant"] is not None]
    meant_nobody = [r for r in rows if r["meant"] is None]
    wrongly_answered = [r for r in rows if r["decided"] is not None and r["decided"] != r["meant"]]
    wrongly_ignored = [r for r in meant_someone if r["decided"] is None]
    return {
        "utterances": len(rows),
        "voices": sorted({r["voice"] for r in rows}),
        "meant_a_character": len(meant_someone),
        "meant_nobody": len(meant_nobody),
        "wrongly_answered": len(wrongly_answered),
        "wrongly_ignored": len(wrongly_ignored),
        "wrongly_answered_rate": round(len(wrongly_answered) / max(1, len(rows)), 3),
        "wrongly_ignored_rate": round(len(wrongly_ignored) / max(1, len(meant_someone)), 3),
        "mistakes": [r for r in rows if r in wrongly_answered or r in wrongly_ignored],
    }


ROOM_QUESTIONS = (
    "Brom, how much does a steel sword cost?",
    "Hilda, is there a room free tonight?",
    "Brom, can you repair my old axe?",
    "Hilda, what is the stew tonight?",
    "Brom, have you seen any wolves on the north road?",
    "Hilda, who made this bread?",
)


async def _room_v2v(url: str, settings: Settings, speakers: int, participants: int, turns: int) -> dict[str, Any]:
    """``participants`` clients in the tavern; ``speakers`` of them take turns asking a character by name.
    Voice-to-voice at the asking client: the end of its speech to the first loud audio after it."""
    from llmasos.client import VoiceClient
    from llmasos.models import ModelStore
    from llmasos.voice_factory import load_tts
    from voice.audio import float_to_s16, resample, s16_to_float
    from voice.tts import voiced_range

    tts = load_tts(settings, ModelStore(settings.data_dir))

    def speech(text: str) -> tuple[npt.NDArray[np.int16], float]:
        out = float_to_s16(resample(s16_to_float(tts.synthesize_sync(text)), tts.sample_rate, 48000))
        _, last = voiced_range(out)
        return out, (len(out) - last) / 48000

    questions = [speech(q) for q in ROOM_QUESTIONS]
    v2v: list[float] = []
    stages: dict[str, list[float]] = {}
    misses = 0
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for i in range(participants):
            client = await VoiceClient.connect(url, room="tavern", player=f"bench-{i}", name=f"Guest{i}")
            clients.append(await stack.enter_async_context(client))
        await clients[0].wait_for("state", state="listening", character="innkeeper", timeout_s=180)  # greeted
        for n in range(turns):
            asker = clients[n % speakers]
            pcm, trailing = questions[n % len(questions)]
            speech_end = await asker.say(pcm) - trailing
            try:
                _, addressed = await asker.wait_for("addressed", since=speech_end, timeout_s=120)
                if addressed["character"] is None:
                    misses += 1
                    continue
                turn = addressed["turn"]
                await asker.wait_for("reply", final=True, turn=turn, timeout_s=180)
                first = asker.received.first_loud_after(speech_end)
                if first is not None:
                    v2v.append(first - speech_end)
                _, metrics = await asker.wait_for("metrics", turn=turn, timeout_s=120)
                for stage, seconds in stage_seconds(metrics["timeline_ms"], unit=0.001).items():
                    stages.setdefault(stage, []).append(seconds)
                await asker.wait_for("state", state="listening", turn=turn, timeout_s=120)
            except TimeoutError:
                misses += 1
    return {
        "participants": participants,
        "speakers": speakers,
        "turns": turns,
        "v2v_s": {"p50": _s(v2v, 50), "p95": _s(v2v, 95), "max": _s(v2v, 100)},
        "measured": len(v2v),
        "unanswered": misses,
        # the server's own timeline of the same turns (`metrics`): where the time goes, p50 per stage
        "stages_p50_s": {stage: _s(stages[stage], 50) for stage in STAGES if stage in stages},
    }


def _s(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


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
        "addressing": _addressing(settings),
    }
    if args.turns > 0:
        from llmasos.bench.latency import start_server

        proc, url = (None, args.url) if args.url else start_server(settings)
        try:
            result["voice_to_voice"] = [
                asyncio.run(_room_v2v(url, settings, n, participants, args.turns)) for n in speakers
            ]
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    args.markdown.write_text(_markdown(result), encoding="utf-8")
    print(_markdown(result))
    return 0
