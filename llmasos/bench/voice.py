"""`llmasos bench voice`: ASR latency, real-time factor and WER (tiny.en, base), VAD cost per 20 ms frame,
TTS time to first audio and real-time factor, and end of speech to final transcript on real-time input (with
and without the speculative final decode). Writes JSON and a Markdown table.

The speech is the human clips that ship with the tests (tests/data/voice: JFK and five LJ Speech clips).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from llmasos.bench import machine, percentile, write_json
from llmasos.errors import ConfigError
from llmasos.models import ModelStore
from llmasos.settings import Settings
from llmasos.voice_factory import endpoint_options, load_asr, load_tts, load_vad
from voice.audio import float_to_s16
from voice.audiofile import decode_file
from voice.endpoint import Endpointer
from voice.listener import Listener, ListenerOptions
from voice.types import AudioFrame, Samples, Transcript, Utterance
from voice.wer import edit_distance, normalize

CLIPS = Path(__file__).resolve().parents[2] / "tests" / "data" / "voice"
REPLIES = (
    "Good morning, traveller. I have swords, shields and a fine bow for sale. What would you like to see first?",
    "The old bridge is north of the river. Follow the road past the mill, and you cannot miss it.",
    "Welcome back! Your armour is repaired. That will be twelve silver coins, if you please.",
)
FRAME = 320  # 20 ms at 16 kHz


def _clips(folder: Path) -> list[tuple[str, Samples, str]]:
    """Every audio clip in ``folder`` that has a .txt transcript beside it."""
    clips = []
    for path in sorted(folder.glob("*")):
        if path.suffix in (".wav", ".flac", ".mp3") and path.with_suffix(".txt").is_file():
            clips.append((path.name, decode_file(path), path.with_suffix(".txt").read_text(encoding="utf-8").strip()))
    if not clips:
        raise ConfigError(f"no benchmark clips in {folder}: it must hold audio files with .txt transcripts beside them")
    return clips


def _bench_asr(
    settings: Settings, store: ModelStore, model: str, clips: list[Any], repeats: int, *, fitted: bool
) -> dict[str, Any]:
    """One model, decoding with Whisper's 30 s window or a window fitted to each utterance (English said, as
    the conversation's settings do for a multilingual model that is told its language)."""
    language = settings.asr.language or ("en" if fitted and model != "tiny.en" else None)
    cfg = settings.asr.model_copy(update={"fitted_window": fitted, "language": language})
    started = time.perf_counter()
    asr = load_asr(settings.model_copy(update={"asr": cfg}), store, model)
    load_s = time.perf_counter() - started
    try:
        asr.warmup()
        latencies: list[float] = []
        rtfs: list[float] = []
        errors = words = 0
        for _name, audio, text in clips:
            for i in range(repeats):
                t0 = time.perf_counter()
                result = asr.transcribe_sync(audio, final=True)
                elapsed = time.perf_counter() - t0
                latencies.append(elapsed)
                rtfs.append(elapsed / (len(audio) / 16_000))
                if i == 0:
                    ref = normalize(text)
                    errors += edit_distance(ref, normalize(result.text))
                    words += len(ref)
        longest = max((a for _, a, _ in clips), key=len)
        partial = [asr.transcribe_sync(longest[: 16_000 * 2], final=False).compute_s for _ in range(repeats)]
    finally:
        asr.close()
    return {
        "model": model,
        "window": f"fitted, >= {cfg.min_window_ms / 1000:g} s" if fitted else "30 s",
        "device": asr.device,
        "load_s": round(load_s, 3),
        "utterances": len(latencies),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p95_s": round(percentile(latencies, 95), 3),
        "rtf_mean": round(statistics.fmean(rtfs), 3),
        "partial_2s_p50_s": round(percentile(partial, 50), 3),
        "wer": round(errors / words, 4),
        "wer_words": words,
    }


def _bench_vad(settings: Settings, store: ModelStore, audio: Samples, repeats: int) -> dict[str, Any]:
    vad = load_vad(settings, store)
    per_frame: list[float] = []
    for _ in range(repeats):
        stream = vad.open()
        for i in range(0, len(audio) - FRAME + 1, FRAME):
            t0 = time.perf_counter()
            stream.probabilities(audio[i : i + FRAME])
            per_frame.append(time.perf_counter() - t0)
    return {
        "frames": len(per_frame),
        "mean_ms_per_20ms_frame": round(1000 * statistics.fmean(per_frame), 4),
        "p95_ms_per_20ms_frame": round(1000 * percentile(per_frame, 95), 4),
        "share_of_real_time": round(statistics.fmean(per_frame) / 0.02, 5),
    }


async def _turns(settings: Settings, vad: Any, asr: Any, audio: Samples, speculative: bool) -> list[float]:
    """Feed ``audio`` in real time (20 ms frames); per utterance, seconds from the end of its speech to its final
    transcript (the endpointing silence plus what is left of the decode)."""
    options = ListenerOptions(partials=False, speculative=speculative)
    listener = Listener(Endpointer(vad.open(), endpoint_options(settings)), asr, options)
    pcm = float_to_s16(np.concatenate([audio, np.zeros(16_000, dtype=np.float32)]))
    fed: list[float] = []

    async def mic() -> AsyncIterator[AudioFrame]:
        start = time.perf_counter()
        for i in range(0, len(pcm) - FRAME + 1, FRAME):
            delay = start + len(fed) * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            fed.append(time.perf_counter())
            yield AudioFrame(pcm[i : i + FRAME, None], 16_000, 1)

    pad_s = settings.endpoint.pre_roll_ms / 1000
    ends: dict[int, float] = {}
    delays: list[float] = []
    async for event in listener.run(mic()):
        if isinstance(event, Utterance):
            ends[event.index] = event.speech_end_s if event.speech_end_s is not None else event.end_s - pad_s
        elif isinstance(event, Transcript) and event.final:
            speech_end = fed[min(len(fed) - 1, int(ends[event.utterance] / 0.02))]
            delays.append(time.perf_counter() - speech_end)
    return delays


def _bench_turns(settings: Settings, store: ModelStore, audio: Samples) -> dict[str, Any]:
    vad = load_vad(settings, store)
    asr = load_asr(settings, store)
    try:
        asr.warmup()
        plain = asyncio.run(_turns(settings, vad, asr, audio, speculative=False))
        speculative = asyncio.run(_turns(settings, vad, asr, audio, speculative=True))
    finally:
        asr.close()
    return {
        "model": settings.asr.model,
        "min_silence_ms": settings.endpoint.min_silence_ms,
        "utterances": len(plain),
        "speech_end_to_final_p50_s": round(percentile(plain, 50), 3),
        "speech_end_to_final_speculative_p50_s": round(percentile(speculative, 50), 3),
        "speech_end_to_final_speculative_max_s": round(max(speculative, default=float("nan")), 3),
    }


async def _words(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "


async def _bench_tts(settings: Settings, store: ModelStore, repeats: int) -> dict[str, Any]:
    tts = load_tts(settings, store)
    try:
        await tts.synthesize("Warming up.")
        first: list[float] = []
        rtfs: list[float] = []
        for _ in range(repeats):
            for reply in REPLIES:
                t0 = time.perf_counter()
                audio_ms = 0.0
                async for chunk in tts.stream(_words(reply)):
                    if audio_ms == 0.0:
                        first.append(time.perf_counter() - t0)
                    audio_ms += chunk.duration_ms
                rtfs.append((time.perf_counter() - t0) / (audio_ms / 1000))
    finally:
        tts.close()
    return {
        "replies": len(first),
        "first_audio_p50_s": round(percentile(first, 50), 3),
        "first_audio_p95_s": round(percentile(first, 95), 3),
        "rtf_mean": round(statistics.fmean(rtfs), 3),
        "sample_rate": tts.sample_rate,
    }


def _markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Voice benchmark",
        "",
        f"{m['cpu']}, {m['cores']} cores, Python {m['python']}; {result['repeats']} runs per clip; "
        f"load average at start {result['load_average']}.",
        "",
        "| ASR model | window | device | utterances | latency p50 (s) | latency p95 (s) | RTF | partial, 2 s (s) | "
        "WER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in result["asr"]:
        lines.append(
            f"| {a['model']} | {a.get('window', '30 s')} | {a['device']} | {a['utterances']} | "
            f"{a['latency_p50_s']} | {a['latency_p95_s']} | "
            f"{a['rtf_mean']} | {a['partial_2s_p50_s']} | {100 * a['wer']:.1f}% |"
        )
    v, t, u = result["vad"], result["tts"], result["turns"]
    lines += [
        "",
        "| VAD (Silero v6) | mean per 20 ms frame | p95 per frame | share of real time |",
        "|---|---|---|---|",
        f"| {v['frames']} frames | {v['mean_ms_per_20ms_frame']} ms | {v['p95_ms_per_20ms_frame']} ms | "
        f"{100 * v['share_of_real_time']:.2f}% |",
        "",
        "| TTS (Piper joe) | replies | time to first audio p50 (s) | p95 (s) | RTF |",
        "|---|---|---|---|---|",
        f"| {t['sample_rate']} Hz | {t['replies']} | {t['first_audio_p50_s']} | {t['first_audio_p95_s']} | "
        f"{t['rtf_mean']} |",
        "",
        "| end of speech to final transcript (real-time input) | utterances | p50 (s) | speculative p50 (s) | "
        "speculative max (s) |",
        "|---|---|---|---|---|",
        f"| {u['model']}, min silence {u['min_silence_ms']} ms | {u['utterances']} | "
        f"{u['speech_end_to_final_p50_s']} | {u['speech_end_to_final_speculative_p50_s']} | "
        f"{u['speech_end_to_final_speculative_max_s']} |",
        "",
        "Latency: one final decode of a whole clip (beam as configured, no word timings, as a conversation decodes). "
        "Window: Whisper's 30 s, or fitted to the utterance (asr.fitted_window). RTF: compute time / "
        "audio time (lower is faster). WER over all clips, case and punctuation normalised.",
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    repeats = max(1, int(args.repeats))
    folder = Path(getattr(args, "clips", None) or CLIPS)
    clips = _clips(folder)
    store = ModelStore(settings.data_dir)
    result: dict[str, Any] = {
        "machine": machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "repeats": repeats,
        "clips": [{"name": n, "seconds": round(len(a) / 16_000, 2)} for n, a, _ in clips],
        "asr": [
            _bench_asr(settings, store, model, clips, repeats, fitted=fitted)
            for model in ("tiny.en", "base")
            for fitted in (False, True)
        ],
        "vad": _bench_vad(settings, store, max((a for _, a, _ in clips), key=len), repeats),
        "tts": asyncio.run(_bench_tts(settings, store, repeats)),
        "turns": _bench_turns(settings, store, max((a for _, a, _ in clips), key=len)),
    }
    write_json(args.json, result)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    text = _markdown(result)
    args.markdown.write_text(text, encoding="utf-8")
    print(text)
    return 0
