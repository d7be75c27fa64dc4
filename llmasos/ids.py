"""The one rule for ids, everywhere: the CLI, the HTTP API, tokens and the data channel.

- A **player** id is 1-64 characters of ``A-Z a-z 0-9 _ . -`` (a game's own account ids fit).
- A **character** or **room** id is its file's name: 1-64 characters of ``a-z 0-9 _ -``, starting with a letter
  or digit (the same rule as ``dialogue.characters``; a test keeps the two equal).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable

PLAYER_ID = r"^[A-Za-z0-9_.\-]{1,64}$"
CHARACTER_ID = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
_PLAYER = re.compile(PLAYER_ID)
_CHARACTER = re.compile(CHARACTER_ID)


class IdError(ValueError):
    pass


def player_id(value: str) -> str:
    if not _PLAYER.fullmatch(value):
        raise IdError(f"{value!r} is not a player id: 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


def character_id(value: str) -> str:
    if not _CHARACTER.fullmatch(value):
        raise IdError(f"{value!r} is not a character id: 1-64 characters of a-z 0-9 _ -, from a letter or digit")
    return value


def player_arg(value: str) -> str:
    """An argparse ``type``: a bad player id is a usage error that says the rule."""
    try:
        return player_id(value)
    except IdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def character_arg(value: str) -> str:
    try:
        return character_id(value)
    except IdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def unknown_characters(wanted: Iterable[str], known: Iterable[str], *, any_ok: bool = False) -> str | None:
    """None when every id in ``wanted`` names a known character (or is ``*``, for any, when ``any_ok``); else
    what to tell the user: which are unknown, and which are known."""
    known = list(known)
    unknown = [c for c in wanted if c not in known and not (any_ok and c == "*")]
    if not unknown:
        return None
    return f"no character {', '.join(map(repr, unknown))} (known: {', '.join(known)}{'; * for any' if any_ok else ''})"
