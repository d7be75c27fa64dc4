"""Prometheus metrics of a server process (GET /metrics), fed by every turn's timeline.

A turn's timeline holds monotonic marks (see llmasos.turn.Timeline). The stages are the critical path from the
end of the user's speech to the first reply audio leaving the server:

    speech_end ─endpoint_wait─► endpoint ─asr─► asr_final ─recall─► recall_done ─llm─► llm_first_sentence
    ─tts─► tts_first_audio ─send─► first_audio_sent

Each stage counts only the time it adds after the stages before it: a stage that ran while an earlier one was
still going (a reply prepared during the endpointing silence) adds only what it still took after that. So the
chain stages always add up to ``voice_to_voice``. ``llm_first_token`` (recall to the model's first token) is
reported beside the chain: it is part of ``llm_first_sentence``.

Errors are counted by kind (``llmasos_errors_total{kind=...}``). A degraded recall (the reply went on without
memories) is one of two kinds, present from the start at 0: ``memory_recall_timeout`` (over its time budget) and
``memory_recall_error`` (the embedder or the database failed).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CHAIN: tuple[tuple[str, str], ...] = (  # (stage, the mark that ends it), in order from "speech_end"
    ("endpoint_wait", "endpoint"),
    ("asr", "asr_final"),
    ("recall", "recall_done"),
    ("llm_first_sentence", "llm_first_sentence"),
    ("tts_first_audio", "tts_first_audio"),
    ("send", "first_audio_sent"),
)
STAGES: tuple[str, ...] = (*(stage for stage, _ in CHAIN), "voice_to_voice", "llm_first_token")
RECALL_DEGRADED: tuple[str, ...] = ("memory_recall_timeout", "memory_recall_error")  # error kinds
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)


def stage_seconds(marks: Mapping[str, float], unit: float = 1.0) -> dict[str, float]:
    """Each stage of the chain whose marks are present, in seconds (``unit``: seconds per mark unit).

    The chain is walked from ``speech_end``; a missing mark ends it (a turn that never spoke has no send)."""
    out: dict[str, float] = {}
    if "speech_end" not in marks:
        return out
    start = reached = marks["speech_end"]
    for stage, end in CHAIN:
        if end not in marks:
            break
        after = max(reached, marks[end])
        out[stage] = (after - reached) * unit
        reached = after
    else:
        out["voice_to_voice"] = (reached - start) * unit
    if "recall_done" in marks and "llm_first_token" in marks:
        out["llm_first_token"] = max(0.0, marks["llm_first_token"] - marks["recall_done"]) * unit
    return out


class Metrics:
    """One registry per server (tests start several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stage = Histogram(
            "llmasos_turn_stage_seconds",
            "Time spent in each stage of a turn (server side)",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.turns = Counter("llmasos_turns_total", "Turns by how they ended", ["outcome"], registry=self.registry)
        self.errors = Counter("llmasos_errors_total", "Errors by kind", ["kind"], registry=self.registry)
        for kind in RECALL_DEGRADED:  # exported at 0, so that a rate over them exists before the first one
            self.errors.labels(kind)
        self.sessions = Gauge("llmasos_active_sessions", "Open voice sessions", registry=self.registry)
        self.sessions_total = Counter("llmasos_sessions_total", "Sessions started", registry=self.registry)

    def turn_finished(self, marks: dict[str, float], outcome: str) -> None:
        self.turns.labels(outcome).inc()
        for stage, seconds in stage_seconds(marks).items():
            self.stage.labels(stage).observe(seconds)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
