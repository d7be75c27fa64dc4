"""`llmasos bench turn`: when does a turn end? False cut-offs against endpoint latency, the way eot-bench
measures them, for silence-only endpointing (300, 500, 600 ms) and for the Smart Turn end-of-turn model.

The labelled set: turns a player says to a character, each with one pause inserted mid-turn at a word
boundary ("Good morning. | Do you have any swords for sale?", "I was wondering | if you could mend my
shield."), spoken by three voices: the packaged Piper voice, Debian's espeak-ng (when installed), and people
(the LJ Speech clips that ship with the tests and end a sentence, cut at a word boundary in their middle,
where Whisper's word timings put one). The audio
before a pause is cut out of the whole sentence, so its intonation is the sentence's own (a fragment spoken
alone would sound finished). Every turn is run through the real endpointer (Silero VAD, and the model when
used) in 20 ms frames, at each pause length:

- a **false cut-off**: the turn ended in the pause inside it (the character would answer half a sentence);
- **endpoint latency**: from the end of the speech to the end of the turn, in audio time (the model's
  compute is reported beside it).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmasos.bench import machine, percentile, write_json
from llmasos.models import ModelStore
from llmasos.settings import Settings
from llmasos.voice_factory import endpoint_options, load_asr, load_tts, load_turn, load_vad
from voice.audio import resample, s16_to_float
from voice.audiofile import decode_file
from voice.endpoint import Endpointer, EndpointOptions, TurnOptions
from voice.types import ASR_RATE, VAD, Samples, TurnChecked, TurnDetector, Utterance

CLIPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "voice"
RATE = ASR_RATE
FRAME = 320  # 20 ms
LEAD_S, TAIL_S = 0.5, 2.5

# what a player says to a character; "|" is where the pause goes
TURNS = (
    "Good morning. | Do you have any swords for sale?",
    "I was wondering, | if you could mend my shield.",
    "Can you tell me, | where the old mill is?",
    "I need a sword, | something light and sharp.",
    "Well, | I think I will take the bow.",
    "Have you seen, | a girl with a red cloak pass by?",
    "How much would it cost, | to repair this armour?",
    "Hello there. | I am looking for the blacksmith.",
    "The road to the north, | is it safe to travel at night?",
    "So, | what can you tell me about the dragon?",
    "I would like, | two loaves of bread and some cheese.",
    "Thank you. | Could you also sharpen my axe?",
)
PAUSES_S = (0.35, 0.6, 0.9)


@dataclass(frozen=True)
class Sample:
    voice: str
    text: str
    first: Samples  # the speech before the pause
    second: Samples  # the speech after it


@dataclass(frozen=True)
class Outcome:
    false_cut: bool
    latency_s: float | None  # speech end to the turn's end (None: the turn never ended)
    checks: int  # times the model was asked
    compute_s: float  # its compute, summed


def _trim(x: Samples, threshold: float = 0.01) -> Samples:
    loud = np.flatnonzero(np.abs(x) > threshold)
    return x[loud[0] : loud[-1] + 1] if len(loud) else x


def _split(audio: Samples, words: list[Any], before: int) -> tuple[Samples, Samples] | None:
    """``audio`` cut at the quietest 10 ms between word ``before - 1`` and word ``before``."""
    if before <= 0 or before >= len(words):
        return None
    lo = int(max(0.0, words[before - 1].end_s - 0.08) * RATE)
    hi = int(min(len(audio) / RATE, words[before].start_s + 0.08) * RATE)
    if hi - lo < 160:
        return None
    hop = 160
    energy = [float(np.mean(audio[i : i + hop] ** 2)) for i in range(lo, hi - hop + 1, hop)]
    cut = lo + hop * int(np.argmin(energy)) + hop // 2
    first, second = _trim(audio[:cut]), _trim(audio[cut:])
    if len(first) < 0.2 * RATE or len(second) < 0.2 * RATE:
        return None
    return first, second


def _aligned(asr: Any, audio: Samples, before: int) -> tuple[Samples, Samples] | None:
    transcript = asr.transcribe_sync(audio, final=True)
    return _split(audio, list(transcript.words), before)


def _espeak(text: str) -> Samples | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run([exe, "-v", "en-us", "-s", "165", "-w", str(wav), text], check=True, capture_output=True)
        return decode_file(wav)


def build_set(settings: Settings, store: ModelStore) -> tuple[list[Sample], list[str]]:
    """The labelled turns, and notes on what was left out (a voice that is not installed)."""
    asr_settings = settings.model_copy(update={"asr": settings.asr.model_copy(update={"word_timestamps": True})})
    asr = load_asr(asr_settings, store, "base")
    tts = load_tts(settings, store)
    samples: list[Sample] = []
    notes: list[str] = []
    try:
        for line in TURNS:
            head, _ = line.split("|")
            text = line.replace("| ", "")
            before = len(head.split())
            pcm = tts.synthesize_sync(text)
            piper = resample(s16_to_float(pcm), tts.sample_rate, RATE)
            if (parts := _aligned(asr, piper, before)) is not None:
                samples.append(Sample("piper-joe", text, *parts))
            spoken = _espeak(text)
            if spoken is None:
                if not notes:
                    notes.append("espeak-ng is not installed: its voice is left out (apt install espeak-ng)")
            elif (parts := _aligned(asr, spoken, before)) is not None:
                samples.append(Sample("espeak-ng", text, *parts))
        for txt in sorted(CLIPS.glob("LJ*.txt")):
            said = txt.read_text(encoding="utf-8").strip()
            if not said.endswith((".", "?", "!")):
                continue  # a clip that stops at a comma is not a finished turn
            audio = decode_file(txt.with_suffix(".wav"))
            words = list(asr.transcribe_sync(audio, final=True).words)
            if len(words) >= 4 and (parts := _split(audio, words, len(words) // 2)) is not None:
                samples.append(Sample("human (LJ Speech)", said, *parts))
    finally:
        tts.close()
        asr.close()
    return samples, notes


def run_turn(vad: VAD, turn: TurnDetector | None, options: EndpointOptions, sample: Sample, pause_s: float) -> Outcome:
    """``sample`` with ``pause_s`` in it, through a fresh endpointer in 20 ms frames."""
    gap = np.zeros(int(pause_s * RATE), dtype=np.float32)
    lead, tail = np.zeros(int(LEAD_S * RATE), np.float32), np.zeros(int(TAIL_S * RATE), np.float32)
    audio = np.concatenate([lead, sample.first, gap, sample.second, tail])
    pause_end_s = LEAD_S + (len(sample.first) + len(gap)) / RATE
    speech_end_s = pause_end_s + len(sample.second) / RATE
    ep = Endpointer(vad.open(), options, turn)
    ends: list[float] = []
    checks, compute = 0, 0.0
    for i in range(0, len(audio) - FRAME + 1, FRAME):
        for event in ep.push(audio[i : i + FRAME]):
            if isinstance(event, TurnChecked):
                checks += 1
                compute += event.verdict.compute_s
            elif isinstance(event, Utterance):
                ends.append((i + FRAME) / RATE)
    false_cut = any(end < pause_end_s + 0.05 for end in ends)
    final = [end for end in ends if end >= pause_end_s + 0.05]
    return Outcome(false_cut, (final[0] - speech_end_s) if final else None, checks, compute)


def _strategies(settings: Settings) -> list[tuple[str, EndpointOptions, bool]]:
    base = endpoint_options(settings)
    ep = settings.endpoint
    out: list[tuple[str, EndpointOptions, bool]] = [
        (f"silence {ms} ms", dataclasses.replace(base, min_silence_ms=ms), False) for ms in (300, 500, 600)
    ]
    for threshold in sorted({0.5, 0.7, 0.9, ep.turn_threshold}):
        smart = TurnOptions(check_ms=ep.turn_check_ms, max_silence_ms=ep.turn_max_silence_ms, threshold=threshold)
        name = f"Smart Turn v3.2 > {threshold:g} at {ep.turn_check_ms} ms, else {ep.turn_max_silence_ms} ms"
        out.append((name, dataclasses.replace(base, turn=smart), True))
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = ModelStore(settings.data_dir)
    t0 = time.perf_counter()
    samples, notes = build_set(settings, store)
    build_s = time.perf_counter() - t0
    vad = load_vad(settings, store)
    smart = settings.model_copy(update={"endpoint": settings.endpoint.model_copy(update={"end_of_turn": "smart_turn"})})
    turn = load_turn(smart, store)
    voices = sorted({s.voice for s in samples})
    rows: list[dict[str, Any]] = []
    for name, options, uses_model in _strategies(settings):
        outcomes = [
            (s, pause, run_turn(vad, turn if uses_model else None, options, s, pause))
            for s in samples
            for pause in PAUSES_S
        ]
        latencies = [o.latency_s for _, _, o in outcomes if o.latency_s is not None]
        checks = sum(o.checks for _, _, o in outcomes)
        row: dict[str, Any] = {
            "strategy": name,
            "turns": len(outcomes),
            "false_cut_rate": _cut_rate([o for _, _, o in outcomes]),
            "false_cut_by_pause": {f"{p:.2f}s": _cut_rate([o for _, q, o in outcomes if q == p]) for p in PAUSES_S},
            "false_cut_by_voice": {v: _cut_rate([o for s, _, o in outcomes if s.voice == v]) for v in voices},
            "endpoint_p50_s": round(percentile(latencies, 50), 3),
            "endpoint_p95_s": round(percentile(latencies, 95), 3),
            "endpoint_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
            "model_ms_per_check": round(1000 * sum(o.compute_s for *_, o in outcomes) / checks, 2) if checks else None,
        }
        rows.append(row)
        print(
            f"{name:58s} false cut-offs {row['false_cut_rate']:.1%}  endpoint p50 {row['endpoint_p50_s']:.3f} s "
            f"p95 {row['endpoint_p95_s']:.3f} s"
        )
    result = {
        "machine": machine(),
        "set": {
            "turns": len(samples),
            "voices": {v: sum(1 for s in samples if s.voice == v) for v in voices},
            "pauses_s": list(PAUSES_S),
            "build_s": round(build_s, 1),
            "notes": notes,
        },
        "results": rows,
    }
    write_json(args.json, result)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(result), encoding="utf-8")
    print(f"wrote {args.json} and {args.markdown}")
    return 0


def _cut_rate(outcomes: list[Outcome]) -> float:
    return round(sum(o.false_cut for o in outcomes) / max(1, len(outcomes)), 3)


def markdown(result: dict[str, Any]) -> str:
    s = result["set"]
    voices = ", ".join(f"{v} {n}" for v, n in s["voices"].items())
    pauses = " / ".join(f"{p:.2f} s" for p in s["pauses_s"])
    lines = [
        f"{s['turns']} turns ({voices}), each with one pause inside it of {pauses}: "
        f"{len(s['pauses_s']) * s['turns']} runs per strategy.",
        "",
        "| end of turn | false cut-offs | by pause " + pauses + " | endpoint p50 | p95 | model per check |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        by_pause = " / ".join(f"{v:.0%}" for v in r["false_cut_by_pause"].values())
        per_check = f"{r['model_ms_per_check']:.1f} ms" if r["model_ms_per_check"] is not None else "-"
        lines.append(
            f"| {r['strategy']} | {r['false_cut_rate']:.1%} | {by_pause} | {r['endpoint_p50_s']:.2f} s "
            f"| {r['endpoint_p95_s']:.2f} s | {per_check} |"
        )
    return "\n".join(lines) + "\n"
