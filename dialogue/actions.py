"""World-action validation against a character's declarations, and the schemas shown to models.

A call is accepted only when the character declares the action, every argument is declared, every required
argument is present and every value has its declared type. Anything else is rejected with a reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dialogue.types import ActionParam, ActionSpec, ArgValue, Character

MAX_STRING = 64
_STRING_RE = re.compile(r"^[\w][\w .'\-]*$")
_INT_RE = re.compile(r"^-?\d{1,12}$")
_NUMBER_RE = re.compile(r"^-?\d{1,12}(\.\d{1,12})?$")


_SAMPLES = {"string": "player", "integer": "1", "number": "1.5"}


class ActionRejected(ValueError):
    """A call that is not a valid declared action; the message is the reason."""


def check_call(
    character: Character,
    name: str,
    args: Mapping[str, Any],
    positional: Sequence[Any] = (),
    *,
    from_text: bool,
) -> dict[str, ArgValue]:
    """The validated, typed arguments of ``name(*positional, **args)``, or ActionRejected.

    ``from_text``: values are strings written in the reply text and are converted to their declared types;
    otherwise (tool calls) values must already have their JSON types.
    """
    spec = character.action(name)
    if spec is None:
        raise ActionRejected(f"action {name!r} is not declared by character {character.id!r}")
    if len(positional) > len(spec.params):
        raise ActionRejected(f"action {name!r} takes {len(spec.params)} arguments, got {len(positional)}")
    merged: dict[str, Any] = {}
    for param, value in zip(spec.params, positional, strict=False):
        merged[param.name] = value
    for key, value in args.items():
        if key in merged:
            raise ActionRejected(f"action {name!r}: argument {key!r} given twice")
        merged[key] = value
    result: dict[str, ArgValue] = {}
    for key, value in merged.items():
        declared = spec.param(key)
        if declared is None:
            raise ActionRejected(f"action {name!r} has no argument {key!r}")
        result[key] = _coerce(spec, declared, value, from_text)
    missing = [p.name for p in spec.params if p.required and p.name not in result]
    if missing:
        raise ActionRejected(f"action {name!r} is missing required argument(s) {', '.join(missing)}")
    return result


def _coerce(spec: ActionSpec, param: ActionParam, value: Any, from_text: bool) -> ArgValue:
    where = f"action {spec.name!r} argument {param.name!r}"
    if from_text and not isinstance(value, str):
        raise ActionRejected(f"{where}: expected text")
    if param.type == "string":
        if not isinstance(value, str):
            raise ActionRejected(f"{where}: expected a string")
        text = value.strip()
        if not text or len(text) > MAX_STRING or not _STRING_RE.match(text):
            raise ActionRejected(f"{where}: {value!r} is not a plain name of at most {MAX_STRING} characters")
        return text
    if param.type == "enum":
        if not isinstance(value, str):
            raise ActionRejected(f"{where}: expected one of {', '.join(param.choices)}")
        for choice in param.choices:
            if value.strip().lower() == choice.lower():
                return choice
        raise ActionRejected(f"{where}: {value!r} is not one of {', '.join(param.choices)}")
    if param.type == "boolean":
        if from_text:
            lowered = str(value).strip().lower()
            if lowered in ("true", "false"):
                return lowered == "true"
        elif isinstance(value, bool):
            return bool(value)
        raise ActionRejected(f"{where}: expected true or false")
    if param.type == "integer":
        if from_text and _INT_RE.match(value.strip()):
            return int(value.strip())
        if not from_text and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**12:
            return int(value)
        raise ActionRejected(f"{where}: expected an integer")
    # number
    if from_text and _NUMBER_RE.match(value.strip()):
        return float(value.strip())
    if not from_text and isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ActionRejected(f"{where}: expected a number")


def json_schema(spec: ActionSpec) -> dict[str, Any]:
    """The JSON schema of an action's arguments (an object with no undeclared properties)."""
    properties: dict[str, Any] = {}
    for p in spec.params:
        prop: dict[str, Any]
        if p.type == "enum":
            prop = {"type": "string", "enum": list(p.choices)}
        elif p.type == "string":
            prop = {"type": "string", "maxLength": MAX_STRING}
        else:
            prop = {"type": p.type}
        if p.description:
            prop["description"] = p.description
        properties[p.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [p.name for p in spec.params if p.required],
        "additionalProperties": False,
    }


def tool_definitions(character: Character) -> list[dict[str, Any]]:
    """One OpenAI-style function tool per declared action (what ``bind_tools`` gets)."""
    return [
        {
            "type": "function",
            "function": {
                "name": a.name,
                "description": a.description or a.name,
                "parameters": json_schema(a),
            },
        }
        for a in character.actions
    ]


def markup_help(character: Character) -> str:
    """How to write each declared action inline, one short line each (a system prompt costs prefill time)."""
    lines = []
    for a in character.actions:
        parts = [a.name]
        for p in a.params:
            sample = "|".join(p.choices) if p.choices else _SAMPLES.get(p.type, "true")
            parts.append(f"{p.name}={sample}")
        lines.append(f"[{' '.join(parts)}] {a.description}".rstrip())
    return "\n".join(lines)
