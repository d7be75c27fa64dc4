"""Reading content files (characters, rooms): TOML or JSON in, errors that name the file and the field."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dialogue.errors import ContentError


def read_content(path: Path, error: type[ContentError]) -> Any:
    """The parsed TOML (``.toml``) or JSON of ``path``; ``error`` (the file's kind) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, "", f"cannot read the file: {exc}") from None
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise error(path, "", f"not valid TOML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(path, "", f"not valid JSON: {exc}") from None


def invalid(path: Path, exc: ValidationError, error: type[ContentError], prefix: str = "") -> ContentError:
    """``error`` for the first problem pydantic found, naming its field (and how many more there are)."""
    err = exc.errors()[0]
    field = prefix + ".".join(str(p) for p in err["loc"])
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return error(path, field, f"{err['msg']}{more}")
