"""Whom an utterance in a room is addressed to: a pure policy (scripted timelines in, decisions out).

In order, for a final utterance of ``speaker`` at time ``at_s``:

1. **name**: it names a character: by full name, any part of it, its role or an alias, anywhere in the
   utterance, tolerant of how speech recognition spells names ("Bram" for Brom, "Iron hand" for Ironhand).
   When it names several people, the first one named is the one spoken to ("Hilda, is Brom in?" is Hilda's).
2. **other_player**: it names another player of the room before any character ("Bob, shall we go?"): no
   character answers.
3. **follow_up**: the same player speaks again within ``follow_up_s`` (8 s) of a character answering them.
4. **focus**: the player faces (or pointed at) a character (``focus``).
5. **only_pair**: the room holds exactly one player and one character: everything is for it (the 1:1 case).
6. **none**: nobody is addressed; the characters stay quiet.

Names are matched on words: exact (case-insensitive) anywhere; a near spelling only where speech recognition
writes a name, capitalised (a lowercase "more" is never Mira), by the same consonant skeleton ("Brahm" is
Brom) or a close spelling; at a sentence's start, where every word is capitalised, only by a close spelling.
A possessive ("Brom's forge") mentions, it does not address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Literal

from dialogue.types import Character

Reason = Literal["name", "follow_up", "focus", "only_pair", "other_player", "backchannel", "none"]

# words that never identify anyone on their own (they may still be part of a full name)
_STOP = frozenset("the of a an and at in on to de von van le la old young sir lady master mister mr mrs ms".split())
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]\s*$")


@dataclass(frozen=True)
class Named:
    """Someone who can be addressed: an id and every name they answer to."""

    id: str
    names: tuple[str, ...]

    @classmethod
    def character(cls, character: Character) -> Named:
        names = [character.name, character.role, *character.aliases]
        return cls(character.id, tuple(n for n in names if n))

    @classmethod
    def player(cls, player: str, name: str) -> Named:
        return cls(player, tuple(n for n in (name,) if n))


@dataclass(frozen=True)
class Addressed:
    speaker: str
    character: str | None
    reason: Reason


@dataclass(frozen=True)
class AddressOptions:
    follow_up_s: float = 8.0  # a player's next words within this after a character answered them are for it


@dataclass(frozen=True)
class _Word:
    lower: str
    capitalised: bool
    sentence_start: bool
    possessive: bool


@dataclass
class Addressing:
    """The room's state the decision depends on: its characters, its players, their focus and who answered
    whom when. Feed it what happens (``join``, ``leave``, ``focus``, ``answered``); ask it ``decide``."""

    characters: Sequence[Named]
    options: AddressOptions = AddressOptions()
    players: dict[str, Named] = field(default_factory=dict)
    _focus: dict[str, str] = field(default_factory=dict)  # player -> character
    _answered: dict[str, tuple[str, float]] = field(default_factory=dict)  # player -> (character, at_s)

    def join(self, player: str, name: str) -> None:
        self.players[player] = Named.player(player, name)

    def leave(self, player: str) -> None:
        self.players.pop(player, None)
        self._focus.pop(player, None)
        self._answered.pop(player, None)

    def focus(self, player: str, character: str | None) -> None:
        """Whom ``player`` faces or points at (None: nobody); an unknown character id is ValueError."""
        if character is None:
            self._focus.pop(player, None)
        elif character not in {c.id for c in self.characters}:
            raise ValueError(f"no character {character!r} in this room")
        else:
            self._focus[player] = character

    def answered(self, character: str, player: str, at_s: float) -> None:
        """``character`` spoke to ``player`` until ``at_s`` (call it when a reply to them ends, however)."""
        self._answered[player] = (character, at_s)

    def decide(self, speaker: str, text: str, at_s: float) -> Addressed:
        words = _words(text)
        others = [p for p in self.players.values() if p.id != speaker]
        first: tuple[int, int, str] | None = None  # (word index, 0 character / 1 player, id)
        for kind, people in ((0, self.characters), (1, others)):
            for person in people:
                at = mention(words, person.names)
                if at is not None and (first is None or (at, kind) < first[:2]):
                    first = (at, kind, person.id)
        if first is not None:
            return Addressed(speaker, first[2], "name") if first[1] == 0 else Addressed(speaker, None, "other_player")
        last = self._answered.get(speaker)
        if last is not None and at_s - last[1] <= self.options.follow_up_s:
            return Addressed(speaker, last[0], "follow_up")
        focused = self._focus.get(speaker)
        if focused is not None:
            return Addressed(speaker, focused, "focus")
        if len(self.characters) == 1 and len(self.players) <= 1:
            return Addressed(speaker, self.characters[0].id, "only_pair")
        return Addressed(speaker, None, "none")


def vocabulary(characters: Iterable[Character], people: Iterable[str] = ()) -> str:
    """The names a room's people will say, as a prompt for the speech recognition ("Hilda, innkeeper, ...,
    Ann, Bob."): the characters' names, roles and aliases, then the names of the people in the room."""
    names = dict.fromkeys([*(n for c in characters for n in (c.name, c.role, *c.aliases) if n), *people])
    return ", ".join(names) + "." if names else ""


def mention(words: Sequence[_Word], names: Iterable[str]) -> int | None:
    """The index of the first word of ``words`` that names someone called by ``names``, or None."""
    best: int | None = None
    for name in names:
        raw = _WORD.findall(name)
        tokens = [t.lower() for t in raw]
        if len(tokens) == 1:
            keys = tokens
        else:  # a part of a longer name counts alone when it is a proper name ("Brom", not "watch")
            keys = [t.lower() for t in raw if t[:1].isupper() and t.lower() not in _STOP and len(t) >= 2]
        for i in range(len(words)):
            if best is not None and i >= best:
                break
            phrase = [w.lower for w in words[i : i + len(tokens)]]
            if (len(tokens) > 1 and phrase == tokens) or _names_at(words, i, keys):
                best = i
    return best


def _names_at(words: Sequence[_Word], i: int, keys: Sequence[str]) -> bool:
    word = words[i]
    if word.possessive:
        return False
    for key in keys:
        if _similar(word, word.lower, key):
            return True
        if i + 1 < len(words) and not words[i + 1].possessive:  # "Iron hand" for Ironhand, "black smith"
            pair = word.lower + words[i + 1].lower
            if len(key) >= 6 and pair == key:
                return True
    return False


def _similar(word: _Word, spelled: str, key: str) -> bool:
    if spelled == key:
        return True
    if not word.capitalised or len(key) < 3 or len(spelled) < 3:
        return False  # a lowercase word is a name only when spelled exactly
    ratio = SequenceMatcher(None, spelled, key).ratio()
    if word.sentence_start:
        return ratio >= 0.7
    skeleton = _skeleton(spelled)
    return ratio >= 0.75 or (len(skeleton) >= 3 and skeleton == _skeleton(key))


def _skeleton(word: str) -> str:
    """A consonant skeleton: how a name sounds, whichever way it is spelled ("Brahm", "Brome" -> "brm")."""
    w = word.lower()
    for a, b in (("ph", "f"), ("ck", "k"), ("gh", ""), ("th", "t"), ("q", "k"), ("x", "ks"), ("z", "s"), ("c", "k")):
        w = w.replace(a, b)
    head, rest = w[:1], re.sub(r"[aeiouyhw]", "", w[1:])
    out = head if head not in "aeiouy" else "a"
    for ch in rest:
        if ch != out[-1]:
            out += ch
    return out


def _words(text: str) -> list[_Word]:
    out: list[_Word] = []
    start = True
    for m in _WORD.finditer(text):
        raw = m.group()
        possessive = raw.lower().endswith("'s")
        base = raw[:-2] if possessive else raw.split("'")[0]
        out.append(_Word(base.lower(), base[:1].isupper(), start, possessive))
        start = bool(_SENTENCE_END.search(text[m.end() : m.end() + 2]))
    return out
