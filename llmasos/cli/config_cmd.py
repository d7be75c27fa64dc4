"""`llmasos config`: print the effective settings."""

from __future__ import annotations

import argparse
from typing import Any

from llmasos.settings import Settings, config_path, dump_toml


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("config", help="print the effective settings as TOML")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    source = config_path(args.config)
    print(f"# effective settings (file: {source or 'none'}; LLMASOS_* environment variables applied)")
    print(dump_toml(settings), end="")
    return 0
