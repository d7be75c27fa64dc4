"""Incremental sentence splitting for streamed text (LLM tokens in, speakable spans out).

A sentence is complete once its terminator (. ! ? ... or a newline) is followed by whitespace: "3.5" and
"e.g." do not end sentences. Optionally the *first* span of a reply may end at a clause boundary (, ; :)
once it is long enough, so speech can start before the first full sentence is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_END = re.compile(r"([.!?\u2026]+[\"'\u201d\u2019)\]]*)(\s+)|(\n+)")
_CLAUSE = re.compile(r"([,;:])(\s+)")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "e.g", "i.e", "no"})


@dataclass(frozen=True)
class Span:
    """Chars ``start:end`` of the whole text received so far (stripped of surrounding whitespace)."""

    text: str
    start: int
    end: int


class SentenceSplitter:
    def __init__(self, first_clause_chars: int = 0) -> None:
        """``first_clause_chars`` > 0: the first span may end at a clause boundary after that many chars."""
        self._text = ""
        self._pos = 0  # start of what has not been emitted
        self._first_clause_chars = first_clause_chars
        self._emitted = 0

    @property
    def text(self) -> str:
        return self._text

    def push(self, chunk: str) -> list[Span]:
        self._text += chunk
        spans: list[Span] = []
        while True:
            end = self._next_end()
            if end is None:
                break
            span = self._span(self._pos, end)
            self._pos = end
            if span is not None:
                spans.append(span)
                self._emitted += 1
        return spans

    def flush(self) -> list[Span]:
        span = self._span(self._pos, len(self._text))
        self._pos = len(self._text)
        if span is None:
            return []
        self._emitted += 1
        return [span]

    def _next_end(self) -> int | None:
        for m in _END.finditer(self._text, self._pos):
            if m.group(3) is None and _is_abbreviation(self._text, m.start()):
                continue
            if self._text[self._pos : m.start()].strip() == "" and m.group(3) is None:
                continue  # a lone terminator
            return m.end(1) if m.group(3) is None else m.end(3)
        if self._emitted == 0 and self._first_clause_chars > 0:
            for m in _CLAUSE.finditer(self._text, self._pos):
                if len(self._text[self._pos : m.start()].strip()) >= self._first_clause_chars:
                    return m.end(1)
        return None

    def _span(self, start: int, end: int) -> Span | None:
        raw = self._text[start:end]
        stripped = raw.strip()
        if not any(c.isalnum() for c in stripped):
            return None
        lead = len(raw) - len(raw.lstrip())
        return Span(stripped, start + lead, start + lead + len(stripped))


def _is_abbreviation(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word = re.search(r"([A-Za-z.]+)$", text[:dot])
    return word is not None and word.group(1).lower().rstrip(".") in _ABBREVIATIONS


def split_sentences(text: str) -> list[Span]:
    splitter = SentenceSplitter()
    return splitter.push(text) + splitter.flush()
