"""`llmasos bench latency`: what users feel, measured at the client.

N aiortc clients talk to a server (a running one with --url, or one this command starts), each speaking real
utterances (made with the packaged voice) with natural pauses. Per turn, at the client:

- voice-to-voice: from the end of the user's speech in the sent audio to the first non-silent frame of the
  reply received;
- barge-in stop (on barge-in turns): from the first voiced sample the client sends over a reply to the last
  frame of that reply's voice received.

Each turn's server timeline (the `metrics` event) is joined to give the stages, and the overhead:
voice-to-voice minus (endpoint wait + ASR + recall + LLM to first sentence + TTS first chunk).

``--conversation`` measures what a conversation is like rather than the kindest case: per player, an earlier
session tells the character a few things about them (its memories are recalled later), then a new session
holds ``--turns`` spoken turns (10 by default) in one connection, each waiting for the whole reply, with
questions that pause mid-turn ("Good morning. [0.36 s] Do you have any swords for sale?"), spoken by
espeak-ng (a voice that is not the server's own), while a second session sits idle beside it. Players run one
after another (``--sessions`` of them). Reported beyond the usual: the model's first token and voice-to-voice
per turn number (does turn 10 cost more than turn 2?), and the paused questions that were split (answered
before the player finished, or heard as two utterances).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from llmasos.bench import machine, percentile, write_json
from llmasos.client import VoiceClient
from llmasos.dialogue_factory import backend_name
from llmasos.metrics import STAGES, stage_seconds
from llmasos.settings import Settings

# (text, pause after the first sentence in seconds): the first has the natural pause that must not split a turn
QUESTIONS: tuple[tuple[str, float], ...] = (
    ("Good morning.|Do you have any swords for sale?", 0.36),
    ("How much does a steel sword cost?", 0.0),
    ("Where is the river mill?", 0.0),
    ("Have you seen any wolves on the north road?", 0.0),
    ("Can you repair my old axe?", 0.0),
    ("What is your daughter's name?", 0.0),
)
# --conversation: what a player says over one connection (the pause, in seconds, after the part before "|")
CONVERSATION: tuple[tuple[str, float], ...] = (
    ("Good morning.|Do you have any swords for sale?", 0.36),
    ("How much does a steel sword cost?", 0.0),
    ("Hmm.|That is more than I hoped to pay.", 0.42),
    ("Can you repair my old axe?", 0.0),
    ("The blade is chipped,|and the handle is loose.", 0.45),
    ("Have you seen any wolves on the north road?", 0.0),
    ("My brother went north last week,|and he has not come back.", 0.38),
    ("Where is the river mill?", 0.0),
    ("Do you remember where I come from?", 0.0),
    ("Thank you.|I will come back tomorrow.", 0.36),
    ("What is your daughter's name?", 0.0),
    ("Is the inn still open at this hour?", 0.0),
)
# --conversation: the earlier session of the same player, whose memories the character recalls later
EARLIER = (
    "My name is Arin, and I am a hunter from the eastern hills.",
    "I am looking for my brother Tomas, who went north to trade furs.",
)
STORY = "Tell me a long story about your forge and your family, please."
INTERRUPTION = "Wait, stop please."
DEADLINE = "no answer before the deadline"
NO_SPEECH = "the reply had no speech"
SHORT_REPLY = "the reply was over before the interruption"
BUDGET_STAGES = ("endpoint_wait", "asr", "recall", "llm_first_sentence", "tts_first_audio")
RATE = 48_000


@dataclass
class Utterance:
    pcm: npt.NDArray[np.int16]
    trailing_s: float  # silence after the last voiced sample
    text: str
    leading_s: float = 0.0  # silence before the first voiced sample
    paused: bool = False  # a pause inside it


@dataclass
class TurnResult:
    session: int
    turn: int
    kind: str  # "question" | "barge_in"
    text: str
    v2v_s: float | None = None
    stages_s: dict[str, float] = field(default_factory=dict)
    barge_in_stop_s: float | None = None
    transcript: str = ""
    error: str = ""  # why this turn has no measurement (e.g. no reply before the deadline)
    number: int = 0  # the turn's place in its connection (1 = the first thing the player said)
    paused: bool = False  # the question has a pause inside it
    split: bool = False  # ... and a reply spoke in its pause (the player was answered before they finished)
    pieces: int = 0  # the final transcripts it was heard as (2: the pause ended an utterance; the words were
    # then answered together, or split)


Synthesize = Callable[[str], tuple[npt.NDArray[np.int16], int]]  # text -> (s16 mono, sample rate)


def piper_voice(settings: Settings) -> Synthesize:
    """The server's own packaged voice."""
    from llmasos.models import ModelStore
    from llmasos.voice_factory import load_tts

    tts = load_tts(settings, ModelStore(settings.data_dir))
    return lambda text: (tts.synthesize_sync(text), tts.sample_rate)


def espeak_voice(voice: str = "en-us", words_per_minute: int = 165) -> Synthesize:
    """Debian's espeak-ng: a voice the server's recogniser and end-of-turn model were not tuned on."""
    import shutil
    import tempfile
    import wave

    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SystemExit("bench latency --conversation speaks with espeak-ng: install it (apt install espeak-ng)")

    def say(text: str) -> tuple[npt.NDArray[np.int16], int]:
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            subprocess.run([binary, "-v", voice, "-s", str(words_per_minute), "-w", f.name, text], check=True)
            with wave.open(f.name) as w:
                return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy(), w.getframerate()

    return say


def speech(synthesize: Synthesize, text: str, pause_s: float = 0.0) -> Utterance:
    """``text`` spoken at 48 kHz; a "|" in it is a pause of ``pause_s`` (the voice's own silences trimmed)."""
    from voice.audio import float_to_s16, resample, s16_to_float
    from voice.tts import voiced_range

    parts = []
    rate = RATE
    for i, piece in enumerate(text.split("|")):
        pcm, rate = synthesize(piece)
        if i:
            parts.append(np.zeros(int(rate * pause_s), dtype=np.int16))
        first, last = voiced_range(pcm)
        parts.append(pcm[first:last] if "|" in text else pcm)
    out = float_to_s16(resample(s16_to_float(np.concatenate(parts)), rate, RATE))
    first, last = voiced_range(out)
    return Utterance(out, (len(out) - last) / RATE, text.replace("|", " "), first / RATE, paused="|" in text)


def make_utterances(settings: Settings) -> tuple[list[Utterance], Utterance, Utterance]:
    voice = piper_voice(settings)
    questions = [speech(voice, text, pause) for text, pause in QUESTIONS]
    return questions, speech(voice, STORY), speech(voice, INTERRUPTION)


async def run_session(
    url: str,
    index: int,
    turns: int,
    questions: list[Utterance],
    story: Utterance,
    interruption: Utterance,
    character: str,
    barge_every: int,
    rng: random.Random,
    player: str | None = None,
) -> list[TurnResult]:
    results: list[TurnResult] = []
    async with await VoiceClient.connect(url, character=character, player=player or f"bench-{index}") as client:
        await client.wait_for("state", state="listening", turn=1, timeout_s=180)  # after the greeting
        for n in range(turns):
            await asyncio.sleep(rng.uniform(0.5, 1.5))  # a natural pause before speaking: part of the scenario
            kind = "barge_in" if barge_every and (n + 1) % barge_every == 0 else "question"
            try:
                if kind == "barge_in":
                    results.append(await _barge_in_turn(client, index, story, interruption))
                else:
                    results.append(await _question_turn(client, index, questions[n % len(questions)]))
                results[-1].number = n + 1
            except TimeoutError:  # an overloaded server: record the turn as unanswered and go on
                results.append(TurnResult(index, -1, kind, "", error=DEADLINE, number=n + 1))
                recent = [m for _, m in client.events[-12:] if m.get("type") != "metrics"]
                print(f"session {index}: {kind} turn unanswered; last events: {recent}", file=sys.stderr)
                with contextlib.suppress(TimeoutError):
                    await client.wait_for("state", state="listening", since=time.monotonic(), timeout_s=120)
    return results


async def _question_turn(client: VoiceClient, index: int, utterance: Utterance) -> TurnResult:
    started = time.monotonic()
    sent_end = await client.say(utterance.pcm)
    speech_end = sent_end - utterance.trailing_s
    _, reply = await client.wait_for("reply", final=True, since=speech_end, timeout_s=180)
    turn = int(reply["turn"])
    result = TurnResult(index, turn, "question", utterance.text, paused=utterance.paused)
    finals = [m for m in client.of_type("transcript", since=started) if m["final"]]
    early = [m for m in client.of_type("state", since=started) if m.get("state") == "speaking" and m["turn"] != turn]
    result.split, result.pieces = bool(early), len(finals)
    first = client.received.first_loud_after(speech_end)
    result.v2v_s = None if first is None else first - speech_end
    _, metrics = await client.wait_for("metrics", turn=turn, timeout_s=60)
    result.stages_s = stage_seconds(metrics["timeline_ms"], unit=0.001)
    result.transcript = " ".join(m["text"] for m in finals)
    await client.wait_for("state", state="listening", turn=turn, timeout_s=60)
    return result


async def _barge_in_turn(client: VoiceClient, index: int, story: Utterance, interruption: Utterance) -> TurnResult:
    sent_end = await client.say(story.pcm)
    started, speaking = await client.wait_for(
        "state",
        since=sent_end - story.trailing_s,
        timeout_s=180,
        where=lambda m: m.get("state") == "speaking" or (m.get("state") == "listening" and "turn" in m),
    )
    turn = int(speaking["turn"])
    result = TurnResult(index, turn, "barge_in", story.text)
    if speaking["state"] != "speaking":  # the model's reply had nothing to say aloud: nothing to interrupt
        result.error = NO_SPEECH
        return result
    # interrupt one second into the reply, unless it is over before that
    loud = asyncio.create_task(client.wait_loud(1.0, since=started, timeout_s=60))
    over = asyncio.create_task(client.wait_for("state", state="listening", turn=turn, since=started, timeout_s=60))
    done, pending = await asyncio.wait({loud, over}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if loud not in done:
        over.result()  # re-raise a timeout
        result.error = SHORT_REPLY
        return result
    loud.result()
    client.mic.say(interruption.pcm)
    talk_at = time.monotonic()
    try:
        at, _ = await client.wait_for("interrupted", turn=turn, timeout_s=15)
    except TimeoutError:
        return result  # the reply ended before the interruption was heard: no stop time
    await client.mic.drained()
    voiced_at = (client.mic.speech_start_at or talk_at) + interruption.leading_s  # its first sound went out
    # the reply's voice: loud frames between the interruption and the next reply speaking
    _, reply = await client.wait_for("reply", final=True, since=at, timeout_s=180)
    next_speaking = [
        t
        for t, m in client.events
        if m.get("type") == "state" and m.get("state") == "speaking" and m.get("turn") == reply["turn"]
    ]
    horizon = next_speaking[0] if next_speaking else at + 2.0
    last = [t for t, level in client.received.frames if talk_at <= t < horizon and level > 300]
    result.barge_in_stop_s = max(0.0, last[-1] - voiced_at) if last else 0.0
    await client.wait_for("state", state="listening", turn=reply["turn"], timeout_s=60)
    return result


async def _forget(url: str, player: str) -> None:
    """A bench player starts with no memories (an earlier run's are not this run's earlier session)."""
    async with httpx.AsyncClient(timeout=30) as http:
        res = await http.delete(f"{url}/players/{player}/memories")
        if res.status_code not in (200, 202):
            raise SystemExit(f"cannot clear the memories of {player}: {res.status_code} {res.text}")


async def _earlier_session(url: str, character: str, player: str, said: list[Utterance]) -> None:
    """A session before the measured one, where the player tells the character about themself; it ends, and its
    memories are written as the session closes."""
    async with await VoiceClient.connect(url, character=character, player=player) as client:
        await client.wait_for("state", state="listening", turn=1, timeout_s=180)
        for utterance in said:
            await _question_turn(client, -1, utterance)


async def run_conversations(
    url: str, args: argparse.Namespace, questions: list[Utterance], earlier: list[Utterance]
) -> list[TurnResult]:
    """``args.sessions`` players, one after another, each with an earlier session and then ``args.turns`` turns
    in one connection, while another session stays connected and silent."""
    results: list[TurnResult] = []
    rng = random.Random(args.seed)
    async with await VoiceClient.connect(url, character=args.character, player="bench-idle") as idle:
        await idle.wait_for("state", state="listening", turn=1, timeout_s=180)
        for i in range(args.sessions):
            player = f"bench-conversation-{i}"
            await _forget(url, player)
            await _earlier_session(url, args.character, player, earlier)
            rows = await run_session(
                url, i, args.turns, questions, questions[0], questions[0], args.character, 0, rng, player=player
            )
            results += rows
            print(f"player {i}: voice-to-voice {[r.v2v_s and round(r.v2v_s, 2) for r in rows]}", flush=True)
    return results


def by_turn(results: list[TurnResult]) -> list[dict[str, Any]]:
    """Per turn number in a connection: the model's first token (from recall) and voice-to-voice, p50."""
    rows = []
    for number in sorted({r.number for r in results if r.number > 0}):
        turns = [r for r in results if r.number == number and r.v2v_s is not None]
        first = [r.stages_s["llm_first_token"] for r in turns if "llm_first_token" in r.stages_s]
        rows.append(
            {
                "turn": number,
                "n": len(turns),
                "llm_first_token_p50_s": round(percentile(first, 50), 3) if first else None,
                "voice_to_voice_p50_s": round(percentile([r.v2v_s for r in turns if r.v2v_s], 50), 3)
                if turns
                else None,
            }
        )
    return rows


def summarise(results: list[TurnResult]) -> dict[str, Any]:
    def stats(values: list[float]) -> dict[str, float | int]:
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "p50": round(percentile(values, 50), 3),
            "p95": round(percentile(values, 95), 3),
            "max": round(max(values), 3),
        }

    questions = [r for r in results if r.kind == "question" and r.v2v_s is not None]
    v2v = [r.v2v_s for r in questions if r.v2v_s is not None]
    stages = {s: stats([r.stages_s[s] for r in questions if s in r.stages_s]) for s in STAGES}
    overhead = [
        r.v2v_s - sum(r.stages_s.get(s, 0.0) for s in BUDGET_STAGES)
        for r in questions
        if r.v2v_s is not None and all(s in r.stages_s for s in BUDGET_STAGES)
    ]
    client_extra = [
        r.v2v_s - r.stages_s["voice_to_voice"]
        for r in questions
        if r.v2v_s is not None and "voice_to_voice" in r.stages_s
    ]
    return {
        "voice_to_voice_s": stats(v2v),
        "barge_in_stop_s": stats([r.barge_in_stop_s for r in results if r.barge_in_stop_s is not None]),
        "stages_s": stages,
        "overhead_s": stats(overhead),
        "client_beyond_server_s": stats(client_extra),
        "turns": len(results),
        "unanswered": sum(1 for r in results if r.error == DEADLINE),
        "no_speech": sum(1 for r in results if r.error == NO_SPEECH),
        "short_reply": sum(1 for r in results if r.error == SHORT_REPLY),
        "paused_questions": sum(1 for r in questions if r.paused),
        "paused_split": sum(1 for r in questions if r.paused and r.split),
        "paused_heard_in_pieces": sum(1 for r in questions if r.paused and r.pieces > 1),
        "by_turn": by_turn(questions),
    }


async def run_load(
    url: str,
    sessions: int,
    turns: int,
    settings: Settings,
    args: argparse.Namespace,
    utterances: tuple[list[Utterance], Utterance, Utterance],
) -> list[TurnResult]:
    questions, story, interruption = utterances
    rng = random.Random(args.seed)
    jobs = [
        run_session(
            url, i, turns, questions, story, interruption, args.character, args.barge_every, random.Random(rng.random())
        )
        for i in range(sessions)
    ]
    per_session = await asyncio.gather(*jobs)
    return [r for session in per_session for r in session]


def start_server(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LLMASOS_DATA_DIR=str(settings.data_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmasos", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not become healthy in 10 minutes")


async def soak(
    url: str, settings: Settings, args: argparse.Namespace, utterances: tuple[list[Utterance], Utterance, Utterance]
) -> list[dict[str, float]]:
    samples: list[dict[str, float]] = []
    t0 = time.monotonic()
    stop = t0 + args.soak_s

    async def sample() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while time.monotonic() < stop:
                health = (await http.get(f"{url}/healthz")).json()
                samples.append(
                    {
                        "t_s": round(time.monotonic() - t0, 1),
                        "rss_mb": health.get("rss_mb", 0.0),
                        "sessions": health.get("sessions", 0),
                    }
                )
                await asyncio.sleep(args.sample_s)  # a sampling interval, not synchronisation

    async def talk() -> None:
        while time.monotonic() < stop:
            await run_load(url, args.sessions, args.turns, settings, args, utterances)

    await asyncio.gather(sample(), talk())
    return samples


def plot(
    results: list[TurnResult],
    summary: dict[str, Any],
    sweep: list[dict[str, Any]],
    path: Path,
    soak: list[dict[str, float]] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 + bool(sweep) + bool(soak)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2))
    v2v = sorted(r.v2v_s for r in results if r.kind == "question" and r.v2v_s is not None)
    ax = axes[0]
    if v2v:
        ax.plot(v2v, np.arange(1, len(v2v) + 1) / len(v2v), drawstyle="steps-post")
    ax.axvline(1.3, color="green", ls="--", lw=1, label="target p50 1.3 s")
    ax.axvline(2.0, color="orange", ls="--", lw=1, label="target p95 2.0 s")
    ax.set(
        xlabel="voice-to-voice at the client (s)",
        ylabel="fraction of turns",
        title="Voice-to-voice CDF",
        xlim=(0, max([*v2v, 2.5]) * 1.05),
        ylim=(0, 1.02),
    )
    ax.legend(loc="lower right")
    ax = axes[1]
    bottom = 0.0
    for stage in (*BUDGET_STAGES, "overhead"):
        stat = summary["overhead_s"] if stage == "overhead" else summary["stages_s"].get(stage, {})
        value = float(stat.get("p50", 0.0))
        ax.bar(["p50"], [value], bottom=bottom, label=stage)
        bottom += value
    ax.set(ylabel="seconds", title="Where the time goes (p50 per stage)")
    ax.legend(loc="upper left", fontsize=8)
    if sweep:
        ax = axes[2]
        n = [row["sessions"] for row in sweep]
        ax.plot(n, [row["voice_to_voice_s"].get("p50", np.nan) for row in sweep], "o-", label="p50")
        ax.plot(n, [row["voice_to_voice_s"].get("p95", np.nan) for row in sweep], "s-", label="p95")
        ax.set(
            xlabel="concurrent sessions",
            ylabel="voice-to-voice (s)",
            title="Concurrency sweep",
            xscale="log",
            xticks=n,
            xticklabels=[str(x) for x in n],
        )
        ax.legend()
    if soak:
        ax = axes[-1]
        t = [row["t_s"] / 60 for row in soak]
        ax.plot(t, [row["rss_mb"] for row in soak], label="server RSS (MB)")
        ax.set(xlabel="minutes", ylabel="RSS (MB)", title="Soak")
        twin = ax.twinx()
        twin.step(t, [row["sessions"] for row in soak], where="post", color="gray", label="open sessions")
        twin.set_ylabel("open sessions")
        ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


GENERATE_REQUESTS = (
    ("character", "A cheerful baker in a mountain village who sells honey bread."),
    ("scene", "A small harbour at dawn with fishing boats and a fish market."),
    ("quest", "Brom needs iron ore from the mine for a new sword."),
    ("story", "A ghost story about the old mill."),
)


async def keep_generating(url: str, stop: asyncio.Event) -> dict[str, Any]:
    """Content generation jobs, one after another (``POST /generate``, not saved), until ``stop``: the load a
    content tool puts on the server while its players talk. What the jobs did is returned."""
    done: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=30) as http:
        i = 0
        while not stop.is_set():
            kind, prompt = GENERATE_REQUESTS[i % len(GENERATE_REQUESTS)]
            i += 1
            job = (
                await http.post(f"{url}/generate", json={"kind": kind, "prompt": prompt, "seed": i, "save": False})
            ).json()
            while job.get("state") in ("queued", "running") and not stop.is_set():
                await asyncio.sleep(0.5)  # a polling interval, not synchronisation
                job = (await http.get(f"{url}/generate/{job['id']}")).json()
            if job.get("state") in ("done", "failed"):
                done.append({"kind": kind, "state": job["state"], "yielded": job["progress"]["yielded"],
                             "seconds": (job.get("report") or {}).get("seconds")})  # fmt: skip
    return {
        "jobs_finished": len(done),
        "jobs_done": sum(j["state"] == "done" for j in done),
        "yields": sum(j["yielded"] for j in done),
        "jobs": done,
    }


async def run_load_generating(
    url: str, settings: Settings, args: argparse.Namespace, utterances: tuple[list[Utterance], Utterance, Utterance]
) -> tuple[list[TurnResult], dict[str, Any]]:
    stop = asyncio.Event()
    generating = asyncio.create_task(keep_generating(url, stop))
    try:
        results = await run_load(url, args.sessions, args.turns, settings, args, utterances)
    finally:
        stop.set()
    return results, await generating


def run(args: argparse.Namespace, settings: Settings) -> int:
    conversation = bool(getattr(args, "conversation", False))
    if conversation:
        voice = espeak_voice()
        spoken = [speech(voice, text, pause) for text, pause in CONVERSATION]
        earlier = [speech(voice, text) for text in EARLIER]
        utterances = (spoken, spoken[0], spoken[0])
    else:
        utterances = make_utterances(settings)
    proc, url = (None, args.url) if args.url else start_server(settings)
    try:
        results: list[TurnResult] = []
        sweep: list[dict[str, Any]] = []
        soak_samples: list[dict[str, float]] = []
        generation: dict[str, Any] = {}
        if conversation:
            results = asyncio.run(run_conversations(url, args, spoken, earlier))
        elif args.generate:
            results, generation = asyncio.run(run_load_generating(url, settings, args, utterances))
        if args.sweep:
            for n in [int(x) for x in args.sweep.split(",")]:
                rows = asyncio.run(run_load(url, n, args.turns, settings, args, utterances))
                sweep.append({"sessions": n, **summarise(rows)})
                print(f"sessions={n}: {sweep[-1]['voice_to_voice_s']}", flush=True)
                write_json(args.json.with_suffix(".partial.json"), {"sweep": sweep})  # survives a later failure
                if n == args.sessions:
                    results = rows
        if not results:
            results = asyncio.run(run_load(url, args.sessions, args.turns, settings, args, utterances))
        if args.soak:
            soak_samples = asyncio.run(soak(url, settings, args, utterances))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:  # its shutdown must not cost the measurements
                print("the server did not stop within 60 s of SIGTERM: killed", flush=True)
                proc.kill()
                proc.wait()
    summary = summarise(results)
    data = {
        "benchmark": "latency",
        "machine": machine(),
        "config": {
            "url": args.url or "started by the bench",
            "sessions": args.sessions,
            "turns": args.turns,
            "character": args.character,
            "barge_every": args.barge_every,
            "generating": bool(args.generate),
            "conversation": conversation,
            "voice": "espeak-ng en-us" if conversation else "piper joe (the server's own)",
            "llm": backend_name(settings),
            "asr": settings.asr.model,
            "min_silence_ms": settings.endpoint.min_silence_ms,
            "end_of_turn": settings.endpoint.end_of_turn,
        },
        "summary": summary,
        "sweep": sweep,
        "soak": soak_samples,
        "generation": generation,  # with --generate: the jobs that ran during the turns
        "turns": [asdict(r) for r in results],
    }
    write_json(args.json, data)
    plot(results, summary, sweep, args.png, soak_samples)
    table = markdown(data)
    args.json.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


def markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    lines = ["| measure | n | p50 (s) | p95 (s) | max (s) |", "|---|---|---|---|---|"]

    def row(name: str, stat: dict[str, Any]) -> None:
        lines.append(
            f"| {name} | {stat.get('n', 0)} | {stat.get('p50', '–')} | {stat.get('p95', '–')} | "
            f"{stat.get('max', '–')} |"
        )

    row("**voice-to-voice (client)**", s["voice_to_voice_s"])
    for stage, stat in s["stages_s"].items():
        row(f"stage: {stage}", stat)
    row("overhead (v2v − budget stages)", s["overhead_s"])
    row("client beyond server timeline", s["client_beyond_server_s"])
    row("**barge-in stop (client)**", s["barge_in_stop_s"])
    if s.get("unanswered"):
        lines.append(f"| turns unanswered before the deadline | {s['unanswered']} | | | |")
    if s.get("short_reply"):
        lines.append(f"| barge-ins not made: the reply was under 1 s | {s['short_reply']} | | | |")
    if s.get("no_speech"):
        lines.append(f"| replies with nothing to say aloud (model output was only markup) | {s['no_speech']} | | | |")
    for entry in data["sweep"]:
        row(f"sweep: {entry['sessions']} sessions, voice-to-voice", entry["voice_to_voice_s"])
    if s.get("paused_questions"):
        lines.append(
            f"| paused questions answered before they were finished (split) | {s['paused_questions']} | "
            f"{s['paused_split']} split | {s['paused_heard_in_pieces']} heard in two pieces | |"
        )
    m, c = data["machine"], data["config"]
    if c.get("conversation") and s.get("by_turn"):
        lines += ["", "| turn in the connection | n | model first token p50 (s) | voice-to-voice p50 (s) |"]
        lines.append("|---|---|---|---|")
        lines += [
            f"| {t['turn']} | {t['n']} | {t['llm_first_token_p50_s']} | {t['voice_to_voice_p50_s']} |"
            for t in s["by_turn"]
        ]
    head = [
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
        + (
            f"conversation: {c['sessions']} player(s) one after another, each with an earlier session, then "
            f"{c['turns']} turns in one connection, spoken by {c['voice']}, a second session idle; "
            if c.get("conversation")
            else f"{c['sessions']} session(s) x {c['turns']} turns, "
        )
        + f"LLM {c['llm']}, ASR {c['asr']}, "
        + (
            "end of turn: Smart Turn v3.2 (200 ms, else 1 s)."
            if c.get("end_of_turn") == "smart_turn"
            else f"min silence {c['min_silence_ms']} ms."
        ),
        "",
    ]
    if data["soak"]:
        rss = [row["rss_mb"] for row in data["soak"]]
        head.insert(
            1,
            f"Soak: {data['soak'][-1]['t_s']:.0f} s, server RSS {rss[0]:.0f} -> {rss[-1]:.0f} MB "
            f"(max {max(rss):.0f}), sessions max {max(r['sessions'] for r in data['soak']):.0f}.",
        )
    return "\n".join(head + lines)
