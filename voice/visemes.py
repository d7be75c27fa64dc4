"""Mouth shapes for speech: espeak phonemes (what Piper speaks from) to the 15 visemes of OpenXR's
XR_META_face_tracking_visemes, timed inside each word's span.

The ids: sil PP FF TH DD kk CH SS nn RR aa E IH OH OU. Piper's packaged voice gives no per-phoneme alignment, so
each word's phonemes share its measured span (``tts.estimate_word_timings``), a vowel twice a consonant's time;
a pause between words, and the end of a stretch of speech, close the mouth (``sil``). Runs of one viseme are
merged. For avatars with five mouth shapes (VRM: aa, ih, ou, ee, oh) see ``VRM``.
"""

from __future__ import annotations

from collections.abc import Sequence

from voice.types import WordTiming

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "IH", "OH", "OU")

# espeak-ng IPA (one code point each, as Piper's phonemizer gives them) -> viseme; anything else (stress and
# length marks, h, the glottal stop, tie bars) shapes no mouth of its own and is skipped
PHONEME_VISEME: dict[str, str] = {
    **dict.fromkeys("pbm", "PP"),
    **dict.fromkeys("fv", "FF"),
    **dict.fromkeys("θð", "TH"),
    **dict.fromkeys("tdɾ", "DD"),
    **dict.fromkeys("kgɡŋx", "kk"),
    **dict.fromkeys("ʃʒçʤʧ", "CH"),
    **dict.fromkeys("sz", "SS"),
    **dict.fromkeys("nlɫɲ", "nn"),
    **dict.fromkeys("ɹrɚɝɻ", "RR"),
    **dict.fromkeys("aɑæɐʌ", "aa"),
    **dict.fromkeys("eɛəɜ", "E"),
    **dict.fromkeys("iɪjɨy", "IH"),
    **dict.fromkeys("oɔɒ", "OH"),
    **dict.fromkeys("uʊwʉ", "OU"),
}
_VOWELS = frozenset("aɑæɐʌeɛəɜiɪɨyoɔɒuʊʉɚɝ")

# the 15 visemes on a VRM avatar's five mouth shapes (aa, ih, ou, ee, oh), as (shape, weight); closed: none
VRM: dict[str, tuple[str, float] | None] = {
    "sil": None,
    "PP": None,
    "FF": ("ih", 0.4),
    "TH": ("ih", 0.4),
    "DD": ("ih", 0.5),
    "kk": ("aa", 0.4),
    "CH": ("ou", 0.6),
    "SS": ("ih", 0.5),
    "nn": ("ih", 0.4),
    "RR": ("ou", 0.5),
    "aa": ("aa", 1.0),
    "E": ("ee", 1.0),
    "IH": ("ih", 1.0),
    "OH": ("oh", 1.0),
    "OU": ("ou", 1.0),
}

PAUSE_MS = 60.0  # a gap between words at least this long closes the mouth
Viseme = tuple[float, str]  # (ms, id)


def word_visemes(phonemes: str) -> list[tuple[str, float]]:
    """The visemes of one word's phonemes with their relative durations (a vowel counts twice)."""
    out: list[tuple[str, float]] = []
    for ph in phonemes:
        viseme = PHONEME_VISEME.get(ph)
        if viseme is not None:
            out.append((viseme, 2.0 if ph in _VOWELS else 1.0))
    return out


def letters_visemes(word: str) -> list[tuple[str, float]]:
    """A rough stand-in when the phonemizer's words do not line up with the text's: the letters as phonemes."""
    return word_visemes("".join(c for c in word.lower() if c.isalpha()))


def timed_visemes(
    words: Sequence[WordTiming], phonemes: Sequence[str] | None = None, end_ms: float | None = None
) -> tuple[Viseme, ...]:
    """Viseme onsets (ms on the words' clock) for ``words``: each word's visemes spread over its span, ``sil``
    in pauses and at ``end_ms`` (default: after the last word). ``phonemes``: one string per word, or None."""
    out: list[Viseme] = []

    def put(ms: float, viseme: str) -> None:
        if out and out[-1][1] == viseme:
            return
        if out and ms <= out[-1][0]:
            out[-1] = (out[-1][0], viseme)  # two onsets at one time: the later one wins
            if len(out) > 1 and out[-2][1] == viseme:
                out.pop()
            return
        out.append((ms, viseme))

    use = phonemes if phonemes is not None and len(phonemes) == len(words) else None
    for i, word in enumerate(words):
        if out and word.start_ms - _last_end(words, i) >= PAUSE_MS:
            put(_last_end(words, i), "sil")
        shapes = word_visemes(use[i]) if use is not None else letters_visemes(word.text)
        if not shapes:
            continue
        total = sum(w for _, w in shapes)
        acc = 0.0
        for viseme, weight in shapes:
            put(round(word.start_ms + (word.end_ms - word.start_ms) * acc / total, 1), viseme)
            acc += weight
    if out:
        put(round(end_ms if end_ms is not None else words[-1].end_ms, 1), "sil")
    return tuple(out)


def _last_end(words: Sequence[WordTiming], i: int) -> float:
    return words[i - 1].end_ms if i > 0 else words[0].start_ms
