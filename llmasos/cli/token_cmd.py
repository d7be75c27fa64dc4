"""`llmasos token`: a signed session token for one player and the characters they may talk to."""

from __future__ import annotations

import argparse
from typing import Any

from llmasos.auth import load_secret, sign
from llmasos.content import scan_characters
from llmasos.errors import ConfigError
from llmasos.ids import player_arg, unknown_characters
from llmasos.settings import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("token", help="print a signed session token for a player")
    p.add_argument("--player", required=True, type=player_arg, help="the player id the token is for")
    p.add_argument(
        "--character", action="append", required=True, help="a character the player may talk to (repeat; * for any)"
    )
    p.add_argument("--ttl", type=_ttl, default=3600, help="seconds until it expires (default 3600)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    known, _ = scan_characters(settings)
    unknown = unknown_characters(args.character, known, any_ok=True)
    if unknown:
        raise ConfigError(unknown)
    secret = load_secret(settings.server.secret, settings.data_dir)
    print(sign(secret, args.player, tuple(args.character), args.ttl))
    return 0


def _ttl(value: str) -> int:
    try:
        ttl = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from None
    if ttl <= 0:
        raise argparse.ArgumentTypeError(f"the ttl must be positive, got {ttl}")
    return ttl
