"""Log lines that say why: every record keeps its structured fields (``extra=``), as ``key=value`` after the
message (``log_format = "text"``) or as one JSON object per line (``"json"``), and what people said stays out.

Fields that carry what someone said or what a model was prompted with (``text``, ``prompt``, ``memories``,
...) are written as their length only, unless ``log_content`` is on (for debugging your own sessions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
# fields that may hold what a person said, what a character replied, or a prompt
_HANDLER = "llmasos"
PRIVATE = frozenset({"text", "prompt", "memories", "removed", "heard", "said", "reply", "transcript"})


def fields(record: logging.LogRecord, *, content: bool = False) -> dict[str, Any]:
    """The record's structured fields, private ones reduced to their length unless ``content``."""
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if key in PRIVATE and not content:
            value = f"<{len(value) if isinstance(value, str | list | tuple) else 1} {_unit(value)}>"
        out[key] = value
    return out


def _unit(value: object) -> str:
    return "chars" if isinstance(value, str) else "items"


def _scalar(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (not text or any(c in text for c in ' ="\n')) else text


class TextFormatter(logging.Formatter):
    """``2026-12-02 15:04:05,123 INFO llmasos.server: session started session=ab12 character=blacksmith``"""

    def __init__(self, *, content: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._content = content

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = fields(record, content=self._content)
        if not extra:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        pairs = " ".join(f"{k}={_scalar(v)}" for k, v in extra.items())
        return f"{head} {pairs}{sep}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the fields, ``exc`` if any."""

    def __init__(self, *, content: bool = False) -> None:
        super().__init__()
        self._content = content

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields(record, content=self._content),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str = "text", *, content: bool = False, quiet: Iterable[str] = ()) -> None:
    """The root logger writes to stderr in ``fmt``; ``quiet`` libraries log warnings only, unless debugging."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(content=content) if fmt == "json" else TextFormatter(content=content))
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:  # configured before: this replaces it
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING if level != "debug" else logging.NOTSET)
