"""A streaming parser that takes inline world-action markup out of a model's reply text.

Models without tool calling write actions inline, ``[wave target=player]`` or ``*wave(player)*``. The parser
removes every piece of markup from the spoken text and turns it into a ReplyAction only when the character
declares the action and the arguments are valid (see ``actions.check_call``); anything else is dropped and
reported to ``on_drop`` with the reason. Chunks may split markup anywhere.

Rules: ``[...]`` is always markup; ``*...*`` is markup unless it holds one undeclared word (emphasis: the word
is spoken); other ``*stage directions*`` are dropped. Markup is one line of at most MAX_MARKUP characters;
an opener that never closes in time is dropped and what followed it is spoken. The spoken text never
contains ``[``, ``]`` or ``*`` and has no repeated whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dialogue.actions import ActionRejected, check_call
from dialogue.types import Character, ReplyAction

MAX_MARKUP = 160
_CLOSER = {"[": "]", "*": "*"}
_WORD = re.compile(r"[\w'.,!?\-]+")
_NAME = re.compile(r"\s*([A-Za-z_]\w*)")
_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s\"'=,()\[\]*]+)"
_SPACE_ARG = re.compile(rf"\s+(?:([A-Za-z_]\w*)\s*=\s*)?({_VALUE})")
_PAREN_ARG = re.compile(rf"\s*(?:([A-Za-z_]\w*)\s*=\s*)?({_VALUE})\s*")

Piece = str | ReplyAction
DropHandler = Callable[[str, str], None]


class ActionMarkupParser:
    def __init__(self, character: Character, on_drop: DropHandler | None = None) -> None:
        self._character = character
        self._on_drop = on_drop
        self._spoken = 0  # characters of spoken text emitted so far
        self._last_space = True  # the last emitted character was whitespace (or nothing was emitted yet)
        self._opener = ""  # "[" or "*" while inside markup
        self._buf: list[str] = []
        self._at = 0
        self.dropped = 0

    def feed(self, chunk: str) -> list[Piece]:
        out: list[Piece] = []
        for ch in chunk:
            self._step(ch, out)
        return out

    def close(self) -> list[Piece]:
        """End of the reply: unterminated markup is dropped (``[``) or spoken as text (``*``)."""
        out: list[Piece] = []
        if self._opener:
            opener, content = self._opener, "".join(self._buf)
            self._opener, self._buf = "", []
            if opener == "[":
                self._drop(content, "unterminated action markup")
            else:
                for ch in content:
                    self._step(ch, out)
                if self._opener:  # a new opener inside the re-fed text: give up on it
                    self._opener, self._buf = "", []
        return _merge(out)

    def _step(self, ch: str, out: list[Piece]) -> None:
        if not self._opener:
            if ch in _CLOSER:
                self._opener, self._buf, self._at = ch, [], self._spoken
            elif ch != "]":
                self._emit(ch, out)
            return
        if ch == _CLOSER[self._opener]:
            content = "".join(self._buf)
            opener = self._opener
            self._opener, self._buf = "", []
            self._finish(opener, content, out)
            return
        if ch == "\n" or len(self._buf) >= MAX_MARKUP:
            # not markup after all: drop the opener and speak what followed it
            content = "".join(self._buf) + ch
            self._opener, self._buf = "", []
            self._drop(content[:MAX_MARKUP], "action markup not closed on its line")
            for c in content:
                self._step(c, out)
            return
        self._buf.append(ch)

    def _emit(self, ch: str, out: list[Piece]) -> None:
        if ch.isspace():
            if self._last_space:
                return
            ch = " " if ch != "\n" else ch
            self._last_space = True
        else:
            self._last_space = False
        self._spoken += 1
        if out and isinstance(out[-1], str):
            out[-1] += ch
        else:
            out.append(ch)

    def _finish(self, opener: str, content: str, out: list[Piece]) -> None:
        if opener == "*":
            words = content.split()
            if not words:
                return  # "**" (bold markers): nothing to say, nothing to do
            if len(words) == 1 and _WORD.fullmatch(words[0]) and self._character.action(words[0]) is None:
                for c in words[0]:
                    self._emit(c, out)  # *emphasis*: speak the word
                return
            if "(" not in content and len(words) > 1:
                self._drop(content, "stage direction, not an action")
                return
        try:
            name, kwargs, positional = _parse_call(content, paren=opener == "*" or "(" in content)
            args = check_call(self._character, name, kwargs, positional, from_text=True)
        except ActionRejected as exc:
            self._drop(content, str(exc))
            return
        out.append(ReplyAction(name=name, args=args, at_char=self._at))

    def _drop(self, content: str, reason: str) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(content, reason)


def _parse_call(content: str, *, paren: bool) -> tuple[str, dict[str, str], list[str]]:
    """``name key=value ...`` or ``name(value, key=value)``; ActionRejected when malformed."""
    m = _NAME.match(content)
    if m is None:
        raise ActionRejected("no action name")
    name, rest = m.group(1), content[m.end() :]
    kwargs: dict[str, str] = {}
    positional: list[str] = []
    if paren and rest.strip():
        inner = re.fullmatch(r"\s*\((.*)\)\s*", rest, re.DOTALL)
        if inner is None:
            raise ActionRejected(f"malformed arguments for {name!r}")
        body = inner.group(1)
        items = _split_commas(body) if body.strip() else []
        for item in items:
            am = _PAREN_ARG.fullmatch(item)
            if am is None:
                raise ActionRejected(f"malformed argument for {name!r}")
            _add(name, kwargs, positional, am.group(1), am.group(2))
        return name, kwargs, positional
    pos = 0
    while pos < len(rest):
        if not rest[pos:].strip():
            break
        am = _SPACE_ARG.match(rest, pos)
        if am is None:
            raise ActionRejected(f"malformed arguments for {name!r}")
        _add(name, kwargs, positional, am.group(1), am.group(2))
        pos = am.end()
    return name, kwargs, positional


def _split_commas(body: str) -> list[str]:
    items, current, quote = [], [], ""
    for ch in body:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quote:
        raise ActionRejected("unterminated quote")
    items.append("".join(current))
    return items


def _add(name: str, kwargs: dict[str, str], positional: list[str], key: Any, raw: str) -> None:
    value = raw[1:-1] if raw[:1] in "\"'" and len(raw) >= 2 else raw
    if key is None:
        if kwargs:
            raise ActionRejected(f"positional argument after keyword argument in {name!r}")
        positional.append(value)
    elif key in kwargs:
        raise ActionRejected(f"argument {key!r} given twice in {name!r}")
    else:
        kwargs[key] = value


def _merge(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for p in pieces:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return merged
