"""`llmasos generate KIND --prompt P [--seed N] [--save]`: one character, quest, scene or story as JSON on stdout
(progress on stderr); `llmasos content-schema`: write the content kinds' JSON Schemas (docs/content/)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

from dialogue.kinds import KINDS
from llmasos.settings import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "generate", help="generate a character, quest, scene or story (schema-valid JSON on stdout)"
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--prompt", required=True, help='what to make, e.g. "a cheerful baker who sells honey bread"')
    p.add_argument("--seed", type=int, default=None, help="the same seed and prompt make the same object")
    p.add_argument("--save", action="store_true", help="write it where the server finds it (content_dir)")
    p.add_argument("--max-tokens", type=int, default=700, help="of one draft (default 700)")
    p.set_defaults(handler=run, one_shot=True)
    s: argparse.ArgumentParser = sub.add_parser("content-schema", help="write the content kinds' JSON Schemas")
    s.add_argument("--out", type=Path, default=Path("docs/content"), help="folder to write into")
    s.set_defaults(handler=run_schema)


def run_schema(args: argparse.Namespace, settings: Settings) -> int:
    from dialogue.kinds import schema

    args.out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        path = args.out / f"{kind}.schema.json"
        path.write_text(json.dumps(schema(kind), indent=2) + "\n", encoding="utf-8")
        print(path)
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_generate(args, settings))


async def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from dialogue.generate import GenerateOptions, GenerationError, generate
    from llmasos.content import library, scan_characters
    from llmasos.dialogue_factory import build_backend

    characters, _ = scan_characters(settings)
    lib = library(settings)
    known = lib.known(args.kind, characters)
    seed = random.randrange(2**31) if args.seed is None else args.seed
    bar = _Bar(args.max_tokens, sys.stderr)
    backend = await asyncio.to_thread(build_backend, settings)
    try:
        generated = await generate(
            backend.model,
            args.kind,
            args.prompt,
            known,
            seed=seed,
            options=GenerateOptions(max_tokens=args.max_tokens),
            on_progress=bar.show,
            constrained=backend.structured_output,
        )
    except ValueError as exc:
        bar.end()
        print(f"llmasos: error: {exc}", file=sys.stderr)
        return 2
    except GenerationError as exc:
        bar.end()
        print(f"llmasos: error: {exc}", file=sys.stderr)
        return 1
    finally:
        close = getattr(backend.model, "close", None)
        if callable(close):
            await asyncio.to_thread(close)
    bar.end()
    print(json.dumps(generated.content, indent=2, ensure_ascii=False))
    report = f"{generated.kind}: {generated.tokens} tokens in {generated.seconds:.1f} s, seed {generated.seed}"
    report += f", {generated.attempts} attempt(s), {len(generated.repairs)} repair(s)"
    print(report, file=sys.stderr)
    for line in generated.rejected:
        print(f"  regenerated: {line}", file=sys.stderr)
    for line in generated.repairs:
        print(f"  repaired: {line}", file=sys.stderr)
    if args.save:
        for path in lib.save(generated):
            print(f"saved {path}", file=sys.stderr)
    return 0


class _Bar:
    """One progress line on a terminal (tokens of the draft so far); nothing when stderr is not a terminal."""

    def __init__(self, total: int, stream: Any) -> None:
        self.total, self.stream = total, stream
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.shown = False

    def show(self, tokens: int, attempt: int) -> None:
        if not self.live:
            return
        width = 30
        filled = min(width, width * tokens // max(1, self.total))
        self.stream.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {tokens} tokens (attempt {attempt})")
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()
