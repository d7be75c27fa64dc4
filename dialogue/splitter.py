"""Cuts a stream of reply text into pieces for speech: at each sentence end, or earlier at a clause boundary
once the piece is long enough, so TTS can start before the sentence is complete.

Early cuts (at a clause, or at ``max_words``) are made only in the first ``clause_sentences`` sentences, where
they make the voice start sooner; later the text is cut at sentence ends only. So when the model's token cap
stops a reply in the middle of a later sentence, nothing of that sentence has been said yet, and
``close(capped=True)`` leaves it unsaid: what is spoken ends at the last complete sentence, or within the first
sentence at a clause boundary, never in the middle of a phrase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dialogue.types import ReplySentence

_ENDERS = ".!?…"
_CLAUSE = ",;:—–"
_CLOSERS = "\"')]”’"
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "sr", "jr", "vs", "e.g", "i.e", "etc", "no", "mt"})

_Cut = Literal["", "sentence", "early"]


@dataclass(frozen=True)
class SplitterOptions:
    min_clause_words: int = 6  # cut at a comma/semicolon/colon/dash once a piece has this many words
    max_words: int = 30  # cut at a space once a piece has this many words, whatever the punctuation
    # early cuts (clause, max_words) only in the first this many sentences: a later one could be the last
    # thing said before the token cap stops the reply
    clause_sentences: int = 1


class SentenceSplitter:
    def __init__(self, options: SplitterOptions = SplitterOptions()) -> None:
        self._options = options
        self._buf = ""
        self._offset = 0  # offset of self._buf[0] in the whole text
        self._scanned = 0  # how much of the buffer has been examined
        self._sentences = 0  # sentences (or lines) ended so far
        self._mid_sentence = False  # the last piece cut was a clause: its sentence goes on in the buffer

    def feed(self, text: str) -> list[ReplySentence]:
        self._buf += text
        out: list[ReplySentence] = []
        i = self._scanned
        while i < len(self._buf):
            ch = self._buf[i]
            cut = self._cut(i) if ch.isspace() else ""
            if cut:
                piece = self._buf[:i]
                if _speakable(piece):
                    out.append(self._piece(piece))
                    self._buf = self._buf[i:]
                    self._offset += i
                    i = 0
                    self._mid_sentence = cut == "early"
                    self._sentences += cut == "sentence"
            i += 1
        self._scanned = len(self._buf)
        return out

    def close(self, *, capped: bool = False) -> list[ReplySentence]:
        """The rest of the text as the last piece. ``capped``: the token cap stopped the text, so its end may be
        mid-phrase. An unfinished last sentence is then left unsaid, except in a reply that has not yet finished a
        sentence: that one is said up to its last clause boundary (if it has one)."""
        piece, self._buf = self._buf, ""
        self._scanned = 0
        if capped and not complete(piece):
            piece = _to_last_clause(piece) if self._sentences == 0 or self._mid_sentence else ""
        if not _speakable(piece):
            return []
        return [self._piece(piece)]

    def _cut(self, i: int) -> _Cut:
        if self._buf[i] == "\n":
            return "sentence"
        head = self._buf[:i].rstrip()
        bare = head.rstrip(_CLOSERS)
        if not bare:
            return ""
        last = bare[-1]
        if last in _ENDERS:
            word = bare.split()[-1].rstrip(_ENDERS).lstrip("\"'([“‘").lower()
            abbreviation = last == "." and (word in _ABBREVIATIONS or len(word) == 1 and word.isalpha())
            return "" if abbreviation else "sentence"
        if self._sentences >= self._options.clause_sentences:
            return ""
        words = len(head.split())
        if last in _CLAUSE and words >= self._options.min_clause_words:
            return "early"
        return "early" if words >= self._options.max_words else ""

    def _piece(self, piece: str) -> ReplySentence:
        lead = len(piece) - len(piece.lstrip())
        return ReplySentence(text=piece.strip(), start_char=self._offset + lead)


def complete(text: str) -> bool:
    """The text ends a sentence."""
    return text.rstrip(_CLOSERS + " \n").endswith(tuple(_ENDERS))


def _to_last_clause(text: str) -> str:
    """``text`` up to and including its last clause mark that ends a word ("" when it has none)."""
    text = text.rstrip()
    for i in range(len(text) - 1, 0, -1):
        if text[i] in _CLAUSE and (i + 1 == len(text) or text[i + 1].isspace()):
            return text[: i + 1]
    return ""


def _speakable(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)
