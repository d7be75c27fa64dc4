"""Takes the prompt's own scaffolding out of a reply's spoken text, as it streams.

Small models read their prompt back ("The player said: ...", "You remember about this player: ...") or write
a transcript ("The player says: ...", "Brom replied: ..."). A line that begins, at the start of the reply, of a
line or of a sentence, with one of the prompt's openers (``prompt.scaffolding``) or as a line of a transcript
(a speaker, at most three words, a colon) is left out up to the end of its line, and so is each list item
("- ...") right after it. The character's bare label before its own words ("Brom:") is left out and the words
kept. Matching ignores case and a leading bullet or quote.

Text is held back only while the start of a sentence could still become one of these (a few words at most).
World actions keep their place in the text let through; those inside text left out are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Literal

from dialogue.types import ReplyAction

Piece = str | ReplyAction

_ENDERS = ".!?…"
_CLOSERS = "\"')]”’"
_BULLETS = "-•–"
_LEADS = _BULLETS + '"“‘'
# between a speaker and the colon of a transcript line: a possessive, then at most three words ("just said")
_SPEAKER_TAIL = re.compile(r"(?:['’]s)?(?: [a-z'’]+){0,3}")
_SPEAKER_TAIL_SO_FAR = re.compile(r"(?:['’]s?)?(?: [a-z'’]*){0,3}")


class ScaffoldFilter:
    """``openers`` begin the prompt's own lines; a line of a transcript begins with a speaker and a colon, perhaps
    a few words between ("The player says:", "Brom replied:"): ``players`` name the player, ``own_names`` the
    character (its bare label, "Brom:", is left out and its words said)."""

    def __init__(self, openers: Sequence[str], players: Sequence[str] = (), own_names: Sequence[str] = ()) -> None:
        self._openers = tuple(o.lower() for o in openers)
        self._speakers = tuple((n.lower(), False) for n in players) + tuple((n.lower(), True) for n in own_names)
        self._mode: Literal["start", "speak", "drop"] = "start"
        self._held: list[Piece] = []  # the start of a sentence, undecided: characters and actions
        self._candidate = ""  # the held text in lower case, without its leading bullet or quote
        self._in_list = False  # a line was just left out: a list item after it is part of the same scaffolding
        self._out = 0  # characters let through so far
        self._last_space = True
        self._last_mark = ""  # the last character let through other than spaces and closing quotes
        self.removed: list[str] = []  # each piece of text left out
        self.dropped_actions = 0

    def feed(self, pieces: Iterable[Piece]) -> list[Piece]:
        out: list[Piece] = []
        for piece in pieces:
            if isinstance(piece, ReplyAction):
                self._action(piece, out)
            else:
                for ch in piece:
                    self._step(ch, out)
        return _merge(out)

    def close(self) -> list[Piece]:
        """The end of the reply: a sentence start still held is let through (it never became an opener)."""
        out: list[Piece] = []
        if self._mode == "start":
            self._release(out)
        return _merge(out)

    def _step(self, ch: str, out: list[Piece]) -> None:
        if self._mode == "drop":
            if ch == "\n":
                self._mode, self._in_list = "start", True
            else:
                self.removed[-1] += ch
            return
        if self._mode == "speak":
            self._emit(ch, out)
            return
        if ch == "\n":
            self._release(out)
            self._emit(ch, out)
            return
        if not self._candidate:
            if self._in_list and ch in _BULLETS:
                self._drop(ch)
                return
            if ch.isspace() and not self._held:
                self._emit(ch, out)
                return
            if ch.isspace() or ch in _LEADS:
                self._held.append(ch)
                return
        self._held.append(ch)
        self._candidate += ch.lower()
        line = self._transcript_line(self._candidate)
        if line == "drop" or any(_matches(self._candidate, o) for o in self._openers):
            self._drop("")
        elif line == "label":
            held, self._held, self._candidate = self._held, [], ""
            self.removed.append("".join(p for p in held if isinstance(p, str)))
            for p in held:
                if isinstance(p, ReplyAction):
                    out.append(replace(p, at_char=self._out))
        elif not self._may_become(self._candidate):
            self._release(out)

    def _transcript_line(self, candidate: str) -> Literal["", "drop", "label"]:
        if not candidate.endswith(":"):
            return ""
        for name, own in self._speakers:
            if candidate.startswith(name) and _SPEAKER_TAIL.fullmatch(candidate[len(name) : -1]):
                return "label" if own and len(candidate) == len(name) + 1 else "drop"
        return ""

    def _may_become(self, candidate: str) -> bool:
        """``candidate`` could still grow into an opener or a transcript line."""
        if any(o.startswith(candidate) for o in self._openers):
            return True
        for name, _ in self._speakers:
            if name.startswith(candidate):
                return True
            if candidate.startswith(name) and _SPEAKER_TAIL_SO_FAR.fullmatch(candidate[len(name) :]):
                return True
        return False

    def _action(self, action: ReplyAction, out: list[Piece]) -> None:
        if self._mode == "drop":
            self.dropped_actions += 1
        elif self._mode == "start" and self._held:
            self._held.append(action)
        else:
            out.append(replace(action, at_char=self._out))

    def _drop(self, ch: str) -> None:
        held, self._held, self._candidate = self._held, [], ""
        self.removed.append("".join(p for p in held if isinstance(p, str)) + ch)
        self.dropped_actions += sum(isinstance(p, ReplyAction) for p in held)
        self._mode = "drop"

    def _release(self, out: list[Piece]) -> None:
        held, self._held, self._candidate = self._held, [], ""
        self._mode, self._in_list = "speak", False
        for p in held:
            if isinstance(p, ReplyAction):
                out.append(replace(p, at_char=self._out))
            else:
                self._emit(p, out)

    def _emit(self, ch: str, out: list[Piece]) -> None:
        if ch.isspace():
            if ch == "\n" or self._last_mark in _ENDERS:
                self._mode = "start"
            if self._last_space:
                return
            self._last_space = True
        else:
            self._last_space = False
            if ch not in _CLOSERS:
                self._last_mark = ch
        self._out += 1
        if out and isinstance(out[-1], str):
            out[-1] += ch
        else:
            out.append(ch)


def _matches(candidate: str, prefix: str) -> bool:
    """``candidate`` is ``prefix`` as a whole: a prefix ending in a word needs a non-word character after it."""
    if not prefix[-1].isalnum():
        return candidate == prefix
    return len(candidate) == len(prefix) + 1 and candidate.startswith(prefix) and not candidate[-1].isalnum()


def _merge(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for p in pieces:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return merged
