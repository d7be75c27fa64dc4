"""`llmasos bench voice|dialogue|latency|turn|room|generate|actions|sync`: speed, memory, accuracy; JSON + tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llmasos.settings import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("bench", help="run a benchmark, write JSON + a Markdown table")
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    v = bsub.add_parser("voice", help="ASR latency/RTF/WER, VAD cost per frame, TTS time to first audio/RTF")
    v.add_argument("--json", type=Path, default=Path("bench/results/voice.json"))
    v.add_argument("--markdown", type=Path, default=Path("bench/results/voice.md"))
    v.add_argument("--repeats", type=int, default=5, help="runs per clip for latency figures")
    v.set_defaults(handler=_run_voice)
    d = bsub.add_parser("dialogue", help="LLM time to first token and tokens/s, memory recall and writes")
    d.add_argument("--json", type=Path, default=Path("bench/results/dialogue.json"))
    d.add_argument("--markdown", type=Path, default=Path("bench/results/dialogue.md"))
    d.add_argument("--sizes", default="1000,10000,100000", help="memory counts for the recall benchmark")
    d.add_argument(
        "--llamacpp-cpu",
        default="auto",
        help="llama.cpp CPU variants to measure, comma-separated: auto (the one chosen here), haswell, x64, ...",
    )
    d.add_argument("--skip-memory", action="store_true", help="measure the LLMs only; keep the memory results")
    d.set_defaults(handler=_run_dialogue)
    t = bsub.add_parser("turn", help="end of turn: false cut-offs against endpoint latency, silence vs Smart Turn")
    t.add_argument("--json", type=Path, default=Path("bench/results/turn.json"))
    t.add_argument("--markdown", type=Path, default=Path("bench/results/turn.md"))
    t.set_defaults(handler=_run_turn)
    r = bsub.add_parser("room", help="a room of real WebRTC peers: mix-minus relay delay, mixer cost, what is heard")
    r.add_argument("--speakers", default="1,2,4", help="comma-separated numbers of participants speaking")
    r.add_argument("--participants", type=int, default=4)
    r.add_argument("--seconds", type=float, default=10.0, help="listening time per row")
    r.add_argument("--turns", type=int, default=8, help="addressed questions per row for voice-to-voice (0: skip)")
    r.add_argument("--url", default=None, help="a running server for voice-to-voice (default: start one)")
    r.add_argument("--json", type=Path, default=Path("bench/results/room.json"))
    r.add_argument("--markdown", type=Path, default=Path("bench/results/room.md"))
    r.set_defaults(handler=_run_room)
    g = bsub.add_parser("generate", help="content generation: time per kind, tokens/s, validity, repairs")
    g.add_argument("--seeds", type=int, default=4, help="seeds per request (3 requests per kind)")
    g.add_argument("--kinds", default="character,quest,scene,story")
    g.add_argument("--max-tokens", type=int, default=700)
    g.add_argument("--json", type=Path, default=Path("bench/results/generate.json"))
    g.add_argument("--markdown", type=Path, default=Path("bench/results/generate.md"))
    g.set_defaults(handler=_run_generate)
    a = bsub.add_parser("actions", help="action choice on labelled requests: right action and arguments, chit-chat")
    a.add_argument("--model", action="store_true", help="also measure the grammar-constrained choice on the LLM")
    a.add_argument("--json", type=Path, default=Path("bench/results/actions.json"))
    a.add_argument("--markdown", type=Path, default=Path("bench/results/actions.md"))
    a.set_defaults(handler=_run_actions)
    sy = bsub.add_parser("sync", help="lip-sync and action timing at a real client, against the audio it received")
    sy.add_argument("--url", default=None, help="a running server (default: start one)")
    sy.add_argument("--turns", type=int, default=8, help="typed turns per client")
    sy.add_argument("--json", type=Path, default=Path("bench/results/sync.json"))
    sy.add_argument("--markdown", type=Path, default=Path("bench/results/sync.md"))
    sy.set_defaults(handler=_run_sync)
    lat = bsub.add_parser("latency", help="voice-to-voice and barge-in at the client, N sessions, per-stage join")
    lat.add_argument("--url", default=None, help="a running server (default: start one)")
    lat.add_argument("--sessions", type=int, default=1)
    lat.add_argument("--turns", type=int, default=None, help="turns per session (default 6; 10 in a conversation)")
    lat.add_argument("--barge-every", type=int, default=3, help="every Nth turn is a barge-in (0: never)")
    lat.add_argument("--character", default="blacksmith")
    lat.add_argument("--sweep", default="", help="comma-separated session counts, e.g. 1,2,4,8")
    lat.add_argument(
        "--soak", action="store_true", help="then soak: keep the sessions talking, sample RSS and sessions"
    )
    lat.add_argument("--soak-s", type=float, default=1800.0, help="soak length in seconds (default 30 min)")
    lat.add_argument("--sample-s", type=float, default=10.0, help="soak sampling interval")
    lat.add_argument("--seed", type=int, default=7)
    lat.add_argument(
        "--generate", action="store_true", help="keep content generation jobs running on the server during the turns"
    )
    lat.add_argument(
        "--conversation",
        action="store_true",
        help="a conversation: an earlier session per player, then --turns turns in one connection (default 10), "
        "questions with pauses spoken by espeak-ng, a second session idle; players one after another",
    )
    lat.add_argument("--json", type=Path, default=Path("bench/results/latency.json"))
    lat.add_argument("--png", type=Path, default=Path("bench/results/latency.png"))
    lat.set_defaults(handler=_run_latency)


def _run_voice(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import voice

    return voice.run(args, settings)


def _run_latency(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import latency

    if args.turns is None:
        args.turns = 10 if args.conversation else 6
    return latency.run(args, settings)


def _run_dialogue(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import dialogue

    return dialogue.run(args, settings)


def _run_generate(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import generate

    return generate.run(args, settings)


def _run_actions(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import actions

    return actions.run(args, settings)


def _run_sync(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import sync

    return sync.run(args, settings)


def _run_room(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import room

    return room.run(args, settings)


def _run_turn(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.bench import turn

    return turn.run(args, settings)
