"""The LLM worker's wire protocol: JSON lines over a Unix socket, one connection per request.

    client -> worker   one Request line: {"op": "generate", "messages": [[role, content], ...], ...}
                       or {"op": "info"}
    worker -> client   Piece lines {"piece": text} as the model makes them, then one Done line
                       {"done": {...}}; or one Failure line {"error": {"kind", "message"}} at any point;
                       for "info": one {"info": {...}} line
    the client hangs up to stop a request (barge-in): the worker stops within one batch of prompt tokens
    while it computes the prompt, at the next token while it generates.

A request states everything the worker needs to serve several server processes at once: its ``priority``
(a foreground reply; background work that yields to replies; idle work, content, that yields to both), an
``affinity`` key (a conversation's id: the context it used last is preferred among equally good ones) and
output constraints (``json_schema``: the reply is valid JSON of that schema by construction, through
llama.cpp's grammar).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Priority = Literal["foreground", "background", "idle"]
FailureKind = Literal["preempted", "bad_request", "failed"]
MAX_LINE = 4 * 1024 * 1024  # a request line (a long prompt) may be this big


@dataclass(frozen=True)
class Request:
    messages: tuple[tuple[str, str], ...]  # (role, content)
    max_tokens: int = 96
    temperature: float = 0.7
    repeat_penalty: float = 1.2
    stop: tuple[str, ...] = ()
    priority: Priority = "foreground"
    affinity: str | None = None
    json_schema: dict[str, Any] | None = None
    seed: int | None = None

    def encode(self) -> bytes:
        body = asdict(self)
        body["op"] = "generate"
        return (json.dumps(body) + "\n").encode()

    @classmethod
    def decode(cls, body: dict[str, Any]) -> Request:
        """From a decoded line; raises ValueError with what is wrong."""
        try:
            messages = tuple((str(r), str(c)) for r, c in body["messages"])
            priority = body.get("priority", "foreground")
            if priority not in ("foreground", "background", "idle"):
                raise ValueError(f"priority must be foreground, background or idle, not {priority!r}")
            schema = body.get("json_schema")
            if schema is not None and not isinstance(schema, dict):
                raise ValueError("json_schema must be an object")
            seed = body.get("seed")
            return cls(
                messages=messages,
                max_tokens=int(body.get("max_tokens", 96)),
                temperature=float(body.get("temperature", 0.7)),
                repeat_penalty=float(body.get("repeat_penalty", 1.2)),
                stop=tuple(str(s) for s in body.get("stop", ())),
                priority=priority,
                affinity=None if body.get("affinity") is None else str(body["affinity"]),
                json_schema=schema,
                seed=None if seed is None else int(seed),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed request: {exc!r}") from None


@dataclass(frozen=True)
class Done:
    finish: str  # "stop" | "length"
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0  # of the input, found in the context's cache
    first_ms: float = 0.0  # from the request's arrival to its first piece, in the worker
    total_ms: float = 0.0


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str


@dataclass(frozen=True)
class Info:
    pid: int
    model: str
    contexts: int
    busy: int
    variant: str | None
    features: str
    extra: dict[str, Any] = field(default_factory=dict)


Reply = str | Done | Failure | Info


def encode_reply(item: Reply) -> bytes:
    if isinstance(item, str):
        body: dict[str, Any] = {"piece": item}
    elif isinstance(item, Done):
        body = {"done": asdict(item)}
    elif isinstance(item, Failure):
        body = {"error": asdict(item)}
    else:
        body = {"info": asdict(item)}
    return (json.dumps(body) + "\n").encode()


def decode_reply(line: bytes) -> Reply:
    body = json.loads(line)
    if "piece" in body:
        return str(body["piece"])
    if "done" in body:
        return Done(**body["done"])
    if "error" in body:
        return Failure(**body["error"])
    return Info(**body["info"])
