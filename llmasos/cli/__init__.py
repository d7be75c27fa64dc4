"""The `llmasos` command. Each command group lives in its own module and registers its subcommands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from llmasos import __version__, logs
from llmasos.cli import (
    bench_cmd,
    config_cmd,
    dialogue_cmd,
    doctor_cmd,
    generate_cmd,
    memory_cmd,
    models_cmd,
    protocol_cmd,
    serve_cmd,
    token_cmd,
    voice_cmd,
)
from llmasos.errors import LLMasOSError
from llmasos.settings import Settings, load_settings, unknown_environment

Handler = Callable[[argparse.Namespace, Settings], int]

# Each module exposes register(subparsers); a subcommand sets `handler` with set_defaults.
_GROUPS = (
    models_cmd,
    doctor_cmd,
    config_cmd,
    bench_cmd,
    memory_cmd,
    voice_cmd,
    protocol_cmd,
    dialogue_cmd,
    generate_cmd,
    serve_cmd,
    token_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmasos",
        description="Voice-first conversational interaction server for virtual worlds.",
    )
    parser.add_argument("--version", action="version", version=f"llmasos {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML settings file (default: $LLMASOS_CONFIG or ./llmasos.toml)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=None,
        help="log lines as text with key=value fields, or as JSON objects (default: the log_format setting)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(sub)
    return parser


# Libraries that log every packet, request or model step at INFO: quiet unless debugging.
_CHATTY = ("aioice", "aiortc", "faster_whisper", "sentence_transformers", "chromadb", "httpx", "matplotlib", "urllib3")


def configure_logging(level: str, fmt: str = "text", *, content: bool = False) -> None:
    logs.configure(level, fmt, content=content, quiet=_CHATTY)
    if level != "debug":  # the libraries' progress bars ("Loading weights" at every model load)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TQDM_DISABLE", "1")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        level = settings.log_level
        if getattr(args, "one_shot", False) and level == "info":
            level = "warning"  # a command that prints its answer: the models' loading lines are noise
        configure_logging(level, args.log_format or settings.log_format, content=settings.log_content)
        for problem in unknown_environment():
            logging.getLogger("llmasos.settings").warning(problem)
        handler: Handler = args.handler
        return handler(args, settings)
    except LLMasOSError as exc:
        print(f"llmasos: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
