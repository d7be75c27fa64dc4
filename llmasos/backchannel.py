"""Backchannels: what a listener says to show they are listening ("uh-huh", "yeah", "okay"), not to take a turn.

A reply paused because its listener began to speak goes on when what they said was only that, or no words at
all (a cough, a noise the recogniser heard nothing in).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

BACKCHANNELS = (
    "uh huh", "mhm", "mm", "mm hmm", "hmm", "yeah", "yes", "yep", "okay", "ok", "right", "sure", "i see", "ah",
    "oh", "aha", "go on", "alright", "all right",
)  # fmt: skip

_WORD = re.compile(r"[a-z']+")
_HELD = re.compile(r"([a-z])\1+")  # a letter doubled or held: "mm", "hmmm", "ohhh"


def _words(text: str) -> list[str]:
    """The words, lower case, each run of one letter as one (the vocabulary's too): the recogniser spells a
    hum as it likes ("MMM.", "Mmm-hmmm", "Ohhh"), and these are "mm", "mm hmm", "oh"."""
    return _WORD.findall(_HELD.sub(r"\1", text.lower().replace("-", " ")))


@functools.lru_cache(maxsize=16)
def _phrases(phrases: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The vocabulary as word tuples, longest first (so "mm hmm" is matched before "mm")."""
    return sorted({tuple(_words(p)) for p in phrases} - {()}, key=len, reverse=True)


def is_backchannel(text: str, phrases: Iterable[str] = BACKCHANNELS) -> bool:
    """``text`` is nothing but backchannel phrases (any number, any punctuation: "Uh-huh. Yeah, yeah."), or
    has no words at all."""
    words = _words(text)
    known = _phrases(tuple(phrases))
    i = 0
    while i < len(words):
        for phrase in known:
            if tuple(words[i : i + len(phrase)]) == phrase:
                i += len(phrase)
                break
        else:
            return False
    return True
