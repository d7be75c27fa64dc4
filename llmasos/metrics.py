"""Prometheus metrics of a server process (GET /metrics), fed by every turn's timeline.

A turn's timeline holds monotonic marks (see llmasos.turn.Timeline); each stage is the time between two
marks, so the stages add up to the server-side voice-to-voice time:

    speech_end ─endpoint_wait─► endpoint ─asr─► asr_final ─recall─► recall_done ─llm─► llm_first_sentence
    ─tts─► tts_first_audio ─send─► first_audio_sent
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

STAGES: tuple[tuple[str, str, str], ...] = (
    ("endpoint_wait", "speech_end", "endpoint"),
    ("asr", "endpoint", "asr_final"),
    ("recall", "asr_final", "recall_done"),
    ("llm_first_sentence", "recall_done", "llm_first_sentence"),
    ("tts_first_audio", "llm_first_sentence", "tts_first_audio"),
    ("send", "tts_first_audio", "first_audio_sent"),
    ("voice_to_voice", "speech_end", "first_audio_sent"),
)
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)


def stage_seconds(marks: dict[str, float]) -> dict[str, float]:
    """Each stage whose two marks are present, in seconds."""
    out = {}
    for stage, start, end in STAGES:
        if start in marks and end in marks:
            out[stage] = max(0.0, marks[end] - marks[start])
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
