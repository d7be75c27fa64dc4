"""Log lines keep their structured fields (key=value or JSON), and what people said stays out unless asked for."""

from __future__ import annotations

import json
import logging

import pytest

from llmasos.logs import JsonFormatter, TextFormatter

pytestmark = pytest.mark.unit


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("llmasos.server", logging.WARNING, __file__, 1, msg, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_text_lines_carry_the_fields_after_the_message() -> None:
    line = TextFormatter().format(
        _record("world action dropped", character="blacksmith", action_text="dance", reason="not declared: dance")
    )
    assert line.endswith(
        'WARNING llmasos.server: world action dropped character=blacksmith action_text=dance reason="not declared: '
        'dance"'
    )


def test_json_lines_are_objects_with_the_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record("session started", session="ab12", room="tavern", turn=3)))
    assert {k: entry[k] for k in ("level", "logger", "message", "session", "room", "turn")} == {
        "level": "warning",
        "logger": "llmasos.server",
        "message": "session started",
        "session": "ab12",
        "room": "tavern",
        "turn": 3,
    }
    assert entry["ts"].endswith("+00:00")


def test_what_people_said_is_left_out_unless_asked_for() -> None:
    record = _record("player said", text="my secret is the red door", typed=True, memories=["a", "b"])
    line = TextFormatter().format(record)
    assert "red door" not in line and 'text="<25 chars>"' in line and 'memories="<2 items>"' in line
    assert "red door" not in JsonFormatter().format(record)
    assert 'text="my secret is the red door"' in TextFormatter(content=True).format(record)


def test_a_traceback_stays_below_the_line_and_its_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "turn failed", (), sys.exc_info())
    record.turn = 4
    head, _, rest = TextFormatter().format(record).partition("\n")
    assert head.endswith("turn failed turn=4") and "ValueError: boom" in rest
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exc"]
