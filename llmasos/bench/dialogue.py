"""`llmasos bench dialogue`: LLM time to first token, time to first sentence and tokens/s per backend, plus the
memory benchmark (recall p50/p95 by store size, write throughput) from llmasos.bench.memory."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from pathlib import Path
from typing import Any

from dialogue import Backend, DialogueError, DialogueManager, ReplySentence
from dialogue.prompt import PromptInput, build_messages
from llmasos.bench import machine, percentile, write_json
from llmasos.dialogue_factory import build_backend, load_character, manager_options
from llmasos.errors import LLMasOSError
from llmasos.settings import Settings

PROMPTS = (
    "Good morning! Do you have any swords for sale?",
    "How much is a steel sword?",
    "Have you heard anything about the wolves on the north road?",
    "Can you repair my old axe?",
    "Where is the river mill?",
)
BACKENDS = ("transformers", "openai", "llamacpp")


def run(args: argparse.Namespace, settings: Settings) -> int:
    sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    llm = {name: asyncio.run(bench_backend(settings, name)) for name in BACKENDS}
    result: dict[str, Any] = {
        "benchmark": "dialogue",
        "machine": machine(),
        "settings": {"max_new_tokens": settings.llm.max_new_tokens, "temperature": settings.llm.temperature},
        "llm": llm,
        "memory": _memory(settings, sizes),
    }
    write_json(args.json, result)
    _write_markdown(args.markdown, result)
    print(args.markdown.read_text(encoding="utf-8"))
    return 0


async def bench_backend(settings: Settings, name: str, repeats: int = len(PROMPTS)) -> dict[str, Any]:
    """Load one backend and time it on the blacksmith's prompts; ``status`` says when it cannot run here."""
    llm = settings.llm
    if name == "openai" and not llm.base_url:
        return {"status": "unavailable", "reason": "no OpenAI-compatible endpoint configured (llm.base_url)"}
    configured = settings.model_copy(update={"llm": llm.model_copy(update={"backend": name})})
    started = time.perf_counter()
    try:
        backend = await asyncio.to_thread(build_backend, configured)
    except (DialogueError, LLMasOSError) as exc:
        return {"status": "unavailable", "reason": str(exc)}
    load_s = time.perf_counter() - started
    character = load_character(settings, "blacksmith")
    ttft: list[float] = []
    first_sentence: list[float] = []
    rates: list[float] = []
    tokens: list[int] = []
    await _time_one(backend, character, PROMPTS[0])  # warm-up
    for i in range(repeats):
        t, r, n = await _time_one(backend, character, PROMPTS[i % len(PROMPTS)])
        ttft.append(t)
        if r is not None:
            rates.append(r)
        tokens.append(n)
        manager = DialogueManager(backend, character, manager_options(settings))
        began = time.perf_counter()
        async for event in manager.reply(PROMPTS[i % len(PROMPTS)]):
            if isinstance(event, ReplySentence):
                first_sentence.append(time.perf_counter() - began)
                break
    return {
        "status": "ok",
        "options": dict(backend.options),
        "load_s": round(load_s, 2),
        "runs": repeats,
        "ttft_s": _stats(ttft),
        "first_sentence_s": _stats(first_sentence),
        "tokens_per_s": _stats(rates),
        "output_tokens_mean": round(sum(tokens) / len(tokens), 1) if tokens else None,
    }


async def _time_one(backend: Backend, character: Any, text: str) -> tuple[float, float | None, int]:
    """(time to first token, decode tokens/s, output tokens) of one streamed reply."""
    messages = build_messages(PromptInput(character=character, player_text=text, markup=not backend.native_tools))
    began = time.perf_counter()
    first: float | None = None
    output_tokens = 0
    chunks = 0
    async for chunk in backend.model.astream(messages):
        if chunk.text and first is None:
            first = time.perf_counter()
        chunks += 1 if chunk.text else 0
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            output_tokens = int(usage.get("output_tokens") or 0)
    ended = time.perf_counter()
    if first is None:
        return ended - began, None, 0
    count = output_tokens or chunks
    rate = (count - 1) / (ended - first) if count > 1 and ended > first else None
    return first - began, rate, count


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "mean": round(sum(values) / len(values), 3),
    }


def _memory(settings: Settings, sizes: list[int]) -> dict[str, Any]:
    try:
        module = importlib.import_module("llmasos.bench.memory")
    except ImportError as exc:
        return {"status": "unavailable", "reason": f"memory benchmark not available: {exc}"}
    bench_memory = module.bench_memory
    result: dict[str, Any] = bench_memory(settings, sizes)
    return result


def _write_markdown(path: Path, result: dict[str, Any]) -> None:
    m = result["machine"]
    lines = [
        "## Dialogue benchmark",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}. "
        f"max_new_tokens {result['settings']['max_new_tokens']}.",
        "",
        "| LLM backend | status | load s | TTFT p50 / p95 s | first sentence p50 / p95 s | tokens/s p50 |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["llm"].items():
        if r["status"] != "ok":
            lines.append(f"| {name} | unavailable: {r['reason']} | | | | |")
            continue
        where = ", ".join(f"{k} {v}" for k, v in r["options"].items())
        lines.append(
            f"| {name} ({where}) | ok | {r['load_s']} | {_pair(r['ttft_s'])} | {_pair(r['first_sentence_s'])} "
            f"| {r['tokens_per_s']['p50'] if r['tokens_per_s'] else '-'} |"
        )
    lines += ["", "### Memory", ""]
    lines += _memory_markdown(result["memory"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _pair(stats: dict[str, float] | None) -> str:
    return f"{stats['p50']} / {stats['p95']}" if stats else "-"


def _memory_markdown(memory: dict[str, Any]) -> list[str]:
    if memory.get("status") == "unavailable":
        return [f"unavailable: {memory.get('reason')}"]
    markdown = memory.get("markdown")
    if isinstance(markdown, str):
        return markdown.splitlines()
    rows = ["| measure | value |", "|---|---|"]
    for key, value in _flatten(memory):
        rows.append(f"| {key} | {value} |")
    return rows


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        out: list[tuple[str, Any]] = []
        for k, v in data.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(data, list) and all(isinstance(v, dict) for v in data):
        out = []
        for i, v in enumerate(data):
            out.extend(_flatten(v, f"{prefix}[{i}]"))
        return out
    return [(prefix, data)]


__all__ = ["bench_backend", "run"]
