"""Visemes: the espeak phoneme table, timing inside word spans, pauses, and the VRM mapping."""

from __future__ import annotations

import pytest

from voice.types import WordTiming
from voice.visemes import PHONEME_VISEME, VISEMES, VRM, timed_visemes, word_visemes

pytestmark = pytest.mark.unit


def w(text: str, start: float, end: float) -> WordTiming:
    return WordTiming(text=text, char_start=0, char_end=len(text), start_ms=start, end_ms=end)


def test_the_table_maps_espeak_phonemes_onto_the_15_openxr_visemes() -> None:
    assert len(VISEMES) == 15
    assert set(PHONEME_VISEME.values()) == set(VISEMES) - {"sil"}
    # one phoneme of each class, as espeak-ng writes it
    cases = {"p": "PP", "m": "PP", "f": "FF", "ð": "TH", "t": "DD", "k": "kk", "ʃ": "CH", "s": "SS", "n": "nn",
             "ɹ": "RR", "æ": "aa", "ɛ": "E", "ɪ": "IH", "ɔ": "OH", "u": "OU"}  # fmt: skip
    assert {ph: PHONEME_VISEME[ph] for ph in cases} == cases
    assert set(VRM) == set(VISEMES)
    assert {shape for shape, _ in filter(None, VRM.values())} == {"aa", "ih", "ou", "ee", "oh"}


def test_stress_length_and_h_shape_no_mouth_of_their_own() -> None:
    # "hello" as espeak writes it: h ə l ˈ oʊ
    assert [v for v, _ in word_visemes("həlˈoʊ")] == ["E", "nn", "OH", "OU"]
    assert [weight for _, weight in word_visemes("həlˈoʊ")] == [2.0, 1.0, 2.0, 2.0]  # vowels twice


def test_visemes_fill_each_word_span_and_close_in_pauses_and_at_the_end() -> None:
    words = [w("map", 0, 300), w("now", 500, 800)]
    out = timed_visemes(words, ["mæp", "naʊ"])
    assert out[0] == (0.0, "PP")
    assert out[1][1] == "aa" and 0 < out[1][0] < 300
    assert (300.0, "sil") in out  # the pause between the words closes the mouth
    assert out[-1] == (800.0, "sil")
    assert [ms for ms, _ in out] == sorted(ms for ms, _ in out)
    assert all(a[1] != b[1] for a, b in zip(out, out[1:], strict=False))  # runs merged


def test_without_phonemes_the_letters_stand_in() -> None:
    out = timed_visemes([w("bob", 0, 200)])
    assert [v for _, v in out] == ["PP", "OH", "PP", "sil"]
    assert timed_visemes([]) == ()
