"""`llmasos bench dialogue`: LLM time to first token, time to first sentence and tokens/s per backend, plus the
memory benchmark (recall p50/p95 by store size, write throughput) from llmasos.bench.memory."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

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
    llm: dict[str, Any] = {}
    for name in BACKENDS:
        if name != "llamacpp":
            llm[name] = asyncio.run(bench_backend(settings, name))
            continue
        for variant in str(args.llamacpp_cpu).split(","):  # the CPU kernels llama.cpp runs with
            forced = settings.model_copy(update={"llm": settings.llm.model_copy(update={"llamacpp_cpu": variant})})
            llm[name if variant == "auto" else f"{name} [{variant}]"] = asyncio.run(bench_backend(forced, name))
    result: dict[str, Any] = {
        "benchmark": "dialogue",
        "machine": machine(),
        "settings": {"max_new_tokens": settings.llm.max_new_tokens, "temperature": settings.llm.temperature},
        "llm": llm,
        "memory": _previous_memory(args.json) if args.skip_memory else _memory(settings, sizes),
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
    try:
        return await _bench_loaded(backend, settings, repeats, load_s)
    finally:
        if backend.engine is not None:
            await asyncio.to_thread(backend.engine.close)


async def _bench_loaded(backend: Backend, settings: Settings, repeats: int, load_s: float) -> dict[str, Any]:
    character = load_character(settings, "blacksmith")
    ttft: list[float] = []
    first_sentence: list[float] = []
    rates: list[float] = []
    tokens: list[int] = []
    hop_ms: list[float] = []  # request sent to first piece read, less the worker's own time (the process hop)
    prompt_rates: list[float] = []
    await _time_one(backend, character, PROMPTS[0])  # warm-up
    for i in range(repeats):
        await _settle(backend)
        one = await _time_one(backend, character, PROMPTS[i % len(PROMPTS)])
        ttft.append(one.ttft_s)
        if one.rate is not None:
            rates.append(one.rate)
        tokens.append(one.tokens)
        if one.worker_hop_ms is not None:
            hop_ms.append(one.worker_hop_ms)
        prompt_rates.append(await _prompt_rate(backend, i))
        manager = DialogueManager(backend, character, manager_options(settings))
        began = time.perf_counter()
        # closed at once, as a conversation does: an abandoned generator would hang up only when collected,
        # and its context would stay busy generating what nobody reads while the next run looks for one
        async with contextlib.aclosing(manager.reply(PROMPTS[i % len(PROMPTS)])) as reply:
            async for event in reply:
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
        "prompt_tokens_per_s": _stats(prompt_rates),
        "process_hop_ms": _stats(hop_ms),
        "output_tokens_mean": round(sum(tokens) / len(tokens), 1) if tokens else None,
    }


async def _settle(backend: Backend, bound_s: float = 2.0) -> None:
    """Until the worker has ended every request (a reply hung up on stops within a batch of tokens): each run
    starts on an idle model, as a player's next words do, not in a race with the last run's stopping."""
    info = getattr(backend.model, "info", None)
    if info is None:
        return
    deadline = time.perf_counter() + bound_s
    while (await info()).busy and time.perf_counter() < deadline:  # noqa: ASYNC110 (the state is in another process)
        await asyncio.sleep(0.005)  # polling the worker's state between two measurements (a bench, not a test)


@dataclass(frozen=True)
class _One:
    ttft_s: float
    rate: float | None  # decode tokens/s
    tokens: int
    worker_first_ms: float | None  # the engine's own time to first token (a worker process reports it)
    worker_hop_ms: float | None = None  # what the process boundary added to it (the worker's client measures it)
    input_tokens: int = 0
    cached_tokens: int = 0


async def _time_one(
    backend: Backend, character: Any, text: str, messages: list[BaseMessage] | None = None, **kwargs: Any
) -> _One:
    """Time one streamed reply."""
    if messages is None:
        prompt = PromptInput(character=character, player_text=text, markup=not backend.native_tools)
        messages = build_messages(prompt)
    began = time.perf_counter()
    first: float | None = None
    output_tokens = input_tokens = cached = 0
    worker_first: float | None = None
    worker_hop: float | None = None
    chunks = 0
    async for chunk in backend.model.astream(messages, **kwargs):
        if chunk.text and first is None:
            first = time.perf_counter()
        chunks += 1 if chunk.text else 0
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            output_tokens = int(usage.get("output_tokens") or 0)
            input_tokens = int(usage.get("input_tokens") or 0)
            cached = int((usage.get("input_token_details") or {}).get("cache_read") or 0)
            worker_first = chunk.response_metadata.get("worker_first_ms")
            worker_hop = chunk.response_metadata.get("worker_hop_ms")
    ended = time.perf_counter()
    if first is None:
        return _One(ended - began, None, 0, None)
    count = output_tokens or chunks
    rate = (count - 1) / (ended - first) if count > 1 and ended > first else None
    return _One(first - began, rate, count, worker_first, worker_hop, input_tokens, cached)


LONG_PROMPT = " ".join(
    f"The {i}th traveller asked about the road to the mill and the price of iron." for i in range(40)
)


async def _prompt_rate(backend: Backend, run: int) -> float:
    """Prompt tokens computed per second, on a ~700-token prompt that no cache holds (it starts with ``run``)."""
    messages: list[BaseMessage] = [SystemMessage(f"Run {run}. You are Brom."), HumanMessage(LONG_PROMPT)]
    one = await _time_one(backend, None, "", messages, max_new_tokens=1)
    computed = one.input_tokens - one.cached_tokens
    seconds = (one.worker_first_ms / 1000) if one.worker_first_ms else one.ttft_s
    return computed / seconds if computed > 0 and seconds > 0 else 0.0


def _previous_memory(path: Path) -> dict[str, Any]:
    """The memory results already in ``path`` (``--skip-memory`` re-measures the LLMs only)."""
    try:
        previous: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["memory"]
        return previous
    except (OSError, ValueError, KeyError):
        return {"status": "unavailable", "reason": "skipped (--skip-memory) and no earlier results"}


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
        "| LLM backend | status | load s | TTFT p50 / p95 s | first sentence p50 / p95 s | tokens/s p50 "
        "| prompt tokens/s p50 | process hop p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["llm"].items():
        if r["status"] != "ok":
            lines.append(f"| {name} | unavailable: {r['reason']} | | | | | | |")
            continue
        where = ", ".join(f"{k} {v}" for k, v in r["options"].items())
        hop = r.get("process_hop_ms")
        lines.append(
            f"| {name} ({where}) | ok | {r['load_s']} | {_pair(r['ttft_s'])} | {_pair(r['first_sentence_s'])} "
            f"| {_p50(r['tokens_per_s'])} | {_p50(r.get('prompt_tokens_per_s'))} | {_pair(hop) if hop else '-'} |"
        )
    lines += ["", "### Memory", ""]
    lines += _memory_markdown(result["memory"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _p50(stats: dict[str, float] | None) -> str:
    return f"{stats['p50']:.0f}" if stats else "-"


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
