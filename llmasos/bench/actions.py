"""`llmasos bench actions`: does the action chooser pick what the player's words ask for, and nothing for talk?

On labelled sets of explicit asks, implicit ones and chit-chat for the packaged characters each chooser is
scored: four development sets (``action_requests.toml``, written before the cue chooser was tuned;
``action_requests_b.toml``, ``_c.toml`` and ``_d.toml``, each written by someone who had seen neither the
chooser nor the sets before it, scored once as held out, then used to improve the chooser) and a held-out one
(``action_requests_heldout.toml``: written the same way, and never used to change the chooser). The score:
explicit asks get the right action with the right arguments (target: at least 90%), chit-chat triggers an
action (target: at most 5%), implicit ones are reported. The cue chooser needs no model; ``--model`` also
measures the grammar-constrained choice on the configured LLM (one call per request).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tomllib
from importlib import resources
from typing import Any

from dialogue.choice import ActionCall, ActionChooser, CueChooser, ModelChooser
from dialogue.types import Character
from llmasos.bench import machine, percentile, write_json
from llmasos.settings import Settings

KINDS = ("explicit", "implicit", "chat")
SETS = {
    "development A": "action_requests.toml",
    "development B": "action_requests_b.toml",
    "development C": "action_requests_c.toml",
    "development D": "action_requests_d.toml",
    "held out": "action_requests_heldout.toml",
}


def requests(name: str = "development A") -> list[dict[str, Any]]:
    text = resources.files("llmasos.bench").joinpath(SETS[name]).read_text(encoding="utf-8")
    return list(tomllib.loads(text)["request"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.content import scan_characters

    characters, _ = scan_characters(settings)
    choosers: dict[str, ActionChooser] = {"cues": CueChooser()}
    backend = None
    if args.model:
        from llmasos.dialogue_factory import backend_name, build_backend

        backend = await asyncio.to_thread(build_backend, settings)
        if not backend.structured_output:
            print(f"the {backend_name(settings)} backend has no constrained output: the model chooser is skipped")
        else:
            choosers["model"] = ModelChooser(backend.model)
    results: dict[str, Any] = {}
    try:
        for label, chooser in choosers.items():
            for name in SETS:
                results[f"{label}, {name}"] = await score(chooser, characters, requests(name))
                print(f"{label}, {name}: {summary_line(results[f'{label}, {name}'])}", flush=True)
    finally:
        close = getattr(backend.model, "close", None) if backend is not None else None
        if callable(close):
            await asyncio.to_thread(close)
    result = {"bench": "actions", "machine": machine(), "choosers": results}
    write_json(args.json, result)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


async def score(
    chooser: ActionChooser, characters: dict[str, Character], cases: list[dict[str, Any]]
) -> dict[str, Any]:
    """Each case's choice against its label, per kind."""
    rows: list[dict[str, Any]] = []
    for case in cases:
        character = characters[case["character"]]
        t0 = time.perf_counter()
        calls = await chooser.choose(character, case["text"])
        ms = (time.perf_counter() - t0) * 1000
        rows.append({**case, "got": [_wire(c) for c in calls], "ok": correct(case, calls), "ms": round(ms, 2)})
    out: dict[str, Any] = {"cases": rows}
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        hits = sum(r["ok"] for r in mine)
        out[kind] = {"n": len(mine), "correct": hits, "pct": round(100 * hits / len(mine), 1) if mine else None}
    chat = [r for r in rows if r["kind"] == "chat"]
    out["chat"]["triggered"] = sum(bool(r["got"]) for r in chat)
    out["chat"]["triggered_pct"] = round(100 * out["chat"]["triggered"] / len(chat), 1) if chat else None
    times = [r["ms"] for r in rows]
    out["ms_p50"], out["ms_p95"] = round(percentile(times, 50), 2), round(percentile(times, 95), 2)
    return out


def correct(case: dict[str, Any], calls: tuple[ActionCall, ...]) -> bool:
    """An ask is right when the first action chosen is the expected one with the expected arguments; talk is
    right when nothing is chosen."""
    expect = case.get("expect")
    if expect is None:
        return not calls
    return bool(calls) and calls[0].name == expect["name"] and calls[0].args == dict(expect.get("args", {}))


def _wire(call: ActionCall) -> dict[str, Any]:
    return {"name": call.name, "args": call.args}


def summary_line(r: dict[str, Any]) -> str:
    return (
        f"explicit {r['explicit']['correct']}/{r['explicit']['n']}, implicit {r['implicit']['correct']}/"
        f"{r['implicit']['n']}, chit-chat triggered {r['chat']['triggered']}/{r['chat']['n']}"
    )


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Action choice on labelled requests ({result['machine']['cpu']}, {result['machine']['cores']} cores)",
        "",
        "| chooser, set | explicit: right action and arguments | implicit | chit-chat: an action triggered "
        "| time per choice p50 / p95 |",
        "|---|---|---|---|---|",
    ]
    for label, r in result["choosers"].items():
        lines.append(
            f"| {label} | {r['explicit']['correct']}/{r['explicit']['n']} ({r['explicit']['pct']}%) "
            f"| {r['implicit']['correct']}/{r['implicit']['n']} ({r['implicit']['pct']}%) "
            f"| {r['chat']['triggered']}/{r['chat']['n']} ({r['chat']['triggered_pct']}%) "
            f"| {r['ms_p50']} / {r['ms_p95']} ms |"
        )
    misses = [
        f"- {label}: {c['text']!r} ({c['kind']}) got {c['got'] or 'nothing'}"
        for label, r in result["choosers"].items()
        for c in r["cases"]
        if not c["ok"]
    ]
    if misses:
        lines += ["", "Misses:", *misses]
    return "\n".join(lines) + "\n"
