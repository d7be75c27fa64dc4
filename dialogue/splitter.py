"""Cuts a stream of reply text into pieces for speech: at each sentence end, or earlier at a clause boundary
once the piece is long enough, so TTS can start before the sentence is complete."""

from __future__ import annotations

from dataclasses import dataclass

from dialogue.types import ReplySentence

_ENDERS = ".!?…"
_CLAUSE = ",;:—–"
_CLOSERS = "\"')]”’"
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "sr", "jr", "vs", "e.g", "i.e", "etc", "no", "mt"})


@dataclass(frozen=True)
class SplitterOptions:
    min_clause_words: int = 6  # cut at a comma/semicolon/colon/dash once a piece has this many words
    max_words: int = 30  # cut at a space once a piece has this many words, whatever the punctuation


class SentenceSplitter:
    def __init__(self, options: SplitterOptions = SplitterOptions()) -> None:
        self._options = options
        self._buf = ""
        self._offset = 0  # offset of self._buf[0] in the whole text
        self._scanned = 0  # how much of the buffer has been examined

    def feed(self, text: str) -> list[ReplySentence]:
        self._buf += text
        out: list[ReplySentence] = []
        i = self._scanned
        while i < len(self._buf):
            ch = self._buf[i]
            if ch.isspace() and self._is_cut(i):
                piece = self._buf[:i]
                if _speakable(piece):
                    out.append(self._piece(piece))
                    self._buf = self._buf[i:]
                    self._offset += i
                    i = 0
            i += 1
        self._scanned = len(self._buf)
        return out

    def close(self) -> list[ReplySentence]:
        piece, self._buf = self._buf, ""
        self._scanned = 0
        if not _speakable(piece):
            return []
        return [self._piece(piece)]

    def _is_cut(self, i: int) -> bool:
        if self._buf[i] == "\n":
            return True
        head = self._buf[:i].rstrip()
        bare = head.rstrip(_CLOSERS)
        if not bare:
            return False
        words = len(head.split())
        last = bare[-1]
        if last in _ENDERS:
            word = bare.split()[-1].rstrip(_ENDERS).lstrip("\"'([“‘").lower()
            return not (last == "." and (word in _ABBREVIATIONS or len(word) == 1 and word.isalpha()))
        if last in _CLAUSE and words >= self._options.min_clause_words:
            return True
        return words >= self._options.max_words

    def _piece(self, piece: str) -> ReplySentence:
        lead = len(piece) - len(piece.lstrip())
        return ReplySentence(text=piece.strip(), start_char=self._offset + lead)


def _speakable(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)
