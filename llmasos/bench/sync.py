"""`llmasos bench sync`: lip-sync and action timing measured at a client, against the audio it received.

A real aiortc client (``VoiceClient``, keeping the samples it receives) asks the server's character typed
questions and requests; for each reply it finds, in the received audio, where speech starts after a pause (a
run of 5 ms windows under the voice threshold, then voice). The reply-audio clock of ``viseme`` and ``action``
events is put on the client's clock at the reply's first sound (which the server sends 5 ms after its
``at_ms`` 0). Then:

- each viseme that opens the mouth after ``sil`` is matched with the nearest speech onset in the audio; its
  error is (where the viseme says the mouth opens) - (where the audio starts), on the client's clock;
- each ``action`` is matched with the audio of the word it stands at: its error is (when the client got it) -
  (when the audio at its ``at_ms`` arrived).

ITU-R BT.1359 puts the detectability window at sound up to 45 ms before the picture and up to 125 ms after it:
an error within [-125, +45] ms is in sync. Run once with a client that plays what it receives at once and
sends no `played` reports (the encoder's clock), and once with one that reports its playback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import numpy as np

from llmasos.bench import machine, percentile, write_json
from llmasos.client import LOUD
from llmasos.settings import Settings
from llmasos.turn import ONSET_KEEP_MS

WINDOW = (-125.0, 45.0)  # ms: the picture may be this much early (-) or late (+) against the sound
VOICE = LOUD  # mean |s16| of a 5 ms window above which it is voice (the client's own threshold)
PAUSE_MS = 60.0  # this much quiet before voice is a speech onset
ONSET_MS = ONSET_KEEP_MS  # what the server keeps before a reply's first sound
REQUESTS = (
    "Hand me the hammer, please.",
    "What do you sell? Tell me about your swords.",
    "Wave at me!",
    "How much is a steel sword?",
    "Could you give me a horseshoe?",
    "Tell me about the wolves on the north road.",
    "Nod if you agree with me.",
    "What is your daughter's name?",
)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench.latency import start_server

    proc, url = (None, args.url) if args.url else start_server(settings)
    try:
        modes: dict[str, Any] = {}
        for mode in ("encoder", "played"):
            modes[mode] = asyncio.run(_measure(url, mode, args.turns))
            print(f"{mode}: {summary_line(modes[mode])}", flush=True)
        result = {"bench": "sync", "machine": machine(), "window_ms": list(WINDOW), "modes": modes}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    write_json(args.json, result)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


async def _measure(url: str, mode: str, turns: int) -> dict[str, Any]:
    from llmasos.client import VoiceClient

    viseme_errors: list[float] = []
    action_errors: list[float] = []
    async with await VoiceClient.connect(url, character="blacksmith", player=f"sync-{mode}", greet=False) as client:
        client.received.keep_pcm = True
        await client.wait_for("state", state="listening", timeout_s=60)
        for i in range(turns):
            asked = time.monotonic()
            client.send_text(REQUESTS[i % len(REQUESTS)])
            at, speaking = await client.wait_for("state", state="speaking", since=asked, timeout_s=120)
            turn = speaking["turn"]
            reporter = asyncio.create_task(_report(client, turn, at)) if mode == "played" else None
            end, _ = await client.wait_for("state", state="listening", turn=turn, timeout_s=180)
            if reporter is not None:
                reporter.cancel()
            await asyncio.sleep(0.3)  # the last frames of the reply still on their way (a measurement margin)
            audio = [(t, pcm) for t, pcm in client.received.pcm if at - 0.1 <= t <= end + 0.3]
            onsets, first = _onsets(audio)
            if first is None:
                continue
            start = first - ONSET_MS / 1000  # the client time of the reply audio's 0 ms
            visemes = [m for m in client.of_type("viseme", since=asked) if m["turn"] == turn]
            for opening in _openings(visemes):
                seen = start + opening / 1000
                if onsets:
                    nearest = min(onsets, key=lambda o: abs(o - seen))
                    viseme_errors.append((seen - nearest) * 1000)
            for got, action in [(t, m) for t, m in client.events if m.get("type") == "action" and m["turn"] == turn]:
                action_errors.append((got - (start + action["at_ms"] / 1000)) * 1000)
    return {"visemes": _stats(viseme_errors), "actions": _stats(action_errors), "turns": turns}


async def _report(client: Any, turn: int, since: float) -> None:
    """A client that plays what it receives at once reports, every 200 ms, how far its playback got."""
    first: float | None = None
    while True:
        await asyncio.sleep(0.2)
        if first is None:
            first = client.received.first_loud_after(since, VOICE)
            if first is None:
                continue
        client.send({"type": "played", "turn": turn, "at_ms": int((time.monotonic() - first) * 1000 + ONSET_MS)})


def _onsets(audio: list[tuple[float, np.ndarray]]) -> tuple[list[float], float | None]:
    """Client times where voice starts after a pause (5 ms windows), and the first voice of all."""
    onsets: list[float] = []
    first: float | None = None
    quiet_ms = PAUSE_MS
    for arrived, pcm in audio:
        frame_start = arrived - len(pcm) / 48_000
        for k in range(0, len(pcm) - 239, 240):  # 5 ms at 48 kHz
            loud = float(np.abs(pcm[k : k + 240].astype(np.float32)).mean()) > VOICE
            t = frame_start + k / 48_000
            if loud and quiet_ms >= PAUSE_MS:
                onsets.append(t)
                first = t if first is None else first
            quiet_ms = 0.0 if loud else quiet_ms + 5.0
    return onsets, first


def _openings(visemes: list[dict[str, Any]]) -> list[float]:
    """Reply-audio ms where the mouth opens after being closed (`sil`)."""
    out: list[float] = []
    closed = True
    for m in visemes:
        for offset, viseme in m["visemes"]:
            if viseme == "sil":
                closed = True
            elif closed:
                out.append(m["at_ms"] + offset)
                closed = False
    return out


def _stats(errors: list[float]) -> dict[str, Any]:
    inside = [e for e in errors if WINDOW[0] <= e <= WINDOW[1]]
    return {
        "n": len(errors),
        "in_window_pct": round(100 * len(inside) / len(errors), 1) if errors else None,
        "error_ms_p50": round(percentile(errors, 50), 1) if errors else None,
        "error_ms_p5": round(percentile(errors, 5), 1) if errors else None,
        "error_ms_p95": round(percentile(errors, 95), 1) if errors else None,
        "error_ms_mean": round(statistics.fmean(errors), 1) if errors else None,
    }


def summary_line(r: dict[str, Any]) -> str:
    v, a = r["visemes"], r["actions"]
    return f"visemes {v['in_window_pct']}% of {v['n']} in window, actions {a['in_window_pct']}% of {a['n']}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Lip-sync and action timing at the client ({result['machine']['cpu']}, {result['machine']['cores']} cores; "
        "error = picture - sound, in sync within -125..+45 ms, ITU-R BT.1359)",
        "",
        "| client | mouth openings in sync | error p5 / p50 / p95 | actions in sync | error p5 / p50 / p95 |",
        "|---|---|---|---|---|",
    ]
    names = {"encoder": "no `played` reports", "played": "`played` reports"}
    for mode, r in result["modes"].items():
        v, a = r["visemes"], r["actions"]
        lines.append(
            f"| {names[mode]} | {v['in_window_pct']}% of {v['n']} | {v['error_ms_p5']} / {v['error_ms_p50']} / "
            f"{v['error_ms_p95']} ms | {a['in_window_pct']}% of {a['n']} | {a['error_ms_p5']} / "
            f"{a['error_ms_p50']} / {a['error_ms_p95']} ms |"
        )
    return "\n".join(lines) + "\n"
