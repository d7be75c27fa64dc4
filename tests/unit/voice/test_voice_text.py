"""Sentence splitting for streamed text, word timing estimates, and the WER helper."""

from __future__ import annotations

import numpy as np
import pytest

from voice.sentences import SentenceSplitter, Span, split_sentences
from voice.tts import estimate_word_timings, voiced_range
from voice.wer import edit_distance, normalize, wer

pytestmark = pytest.mark.unit


def test_split_sentences_keeps_offsets() -> None:
    text = "Good morning. Do you have any swords for sale? I paid 3.5 gold to Mr. Smith!  Yes...\nNo"
    spans = split_sentences(text)
    assert [s.text for s in spans] == [
        "Good morning.",
        "Do you have any swords for sale?",
        "I paid 3.5 gold to Mr. Smith!",
        "Yes...",
        "No",
    ]
    assert all(text[s.start : s.end] == s.text for s in spans)


def test_streamed_tokens_give_sentences_as_soon_as_they_end() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello") == []
    assert splitter.push(" there.") == []  # "." may still be "..." or "3.5"
    assert splitter.push(" How") == [Span("Hello there.", 0, 12)]
    assert splitter.push(" are you?") == []
    assert splitter.flush() == [Span("How are you?", 13, 25)]
    assert splitter.flush() == []


def test_first_clause_may_be_spoken_early() -> None:
    splitter = SentenceSplitter(first_clause_chars=10)
    assert splitter.push("Well now, my") == []  # "Well now" is too short
    assert splitter.push(" friend, I think") == [Span("Well now, my friend,", 0, 20)]
    assert splitter.push(" so, truly. Yes") == [Span("I think so, truly.", 21, 39)]  # only the first span


def test_punctuation_only_is_not_spoken() -> None:
    assert split_sentences("... !! ?") == []


def test_word_timings_cover_the_voiced_audio_in_order() -> None:
    rate = 22_050
    pcm = np.zeros(rate, dtype=np.int16)
    pcm[2_205:19_845] = 5_000  # voiced from 100 ms to 900 ms
    assert voiced_range(pcm) == (2_205, 19_845)
    span = Span("Hello big world.", 10, 26)
    words = estimate_word_timings(span, pcm, rate, start_ms=1_000.0)
    assert [w.text for w in words] == ["Hello", "big", "world."]
    assert [(w.char_start, w.char_end) for w in words] == [(10, 15), (16, 19), (20, 26)]
    assert words[0].start_ms == pytest.approx(1_100.0)
    assert words[-1].end_ms == pytest.approx(1_900.0)
    assert all(a.end_ms == pytest.approx(b.start_ms) for a, b in zip(words, words[1:], strict=False))
    assert words[0].end_ms - words[0].start_ms > words[1].end_ms - words[1].start_ms  # longer word, longer time


def test_normalize_and_wer() -> None:
    assert normalize("And so, my fellow-Americans: ASK not!") == [
        "and",
        "so",
        "my",
        "fellow",
        "americans",
        "ask",
        "not",
    ]
    assert normalize("don\u2019t 'quote'") == ["don't", "quote"]
    assert wer("ask not what your country", "Ask not, what your country.") == 0.0
    assert wer("a b c d", "a x c") == pytest.approx(0.5)  # one substitution, one deletion
    assert wer("", "") == 0.0 and wer("", "extra") == 1.0
    assert edit_distance(["a"], ["b", "a", "c"]) == 2


def test_word_timings_follow_phoneme_counts_when_they_line_up() -> None:
    rate = 1_000
    pcm = np.full(1_000, 5_000, dtype=np.int16)
    span = Span("aa bb", 0, 5)
    by_letters = estimate_word_timings(span, pcm, rate, 0.0)
    assert by_letters[0].end_ms == pytest.approx(500.0)
    by_phonemes = estimate_word_timings(span, pcm, rate, 0.0, phonemes=[5, 1])
    assert by_phonemes[0].end_ms == pytest.approx(750.0)  # (5+1) / (5+1 + 1+1)
    assert estimate_word_timings(span, pcm, rate, 0.0, phonemes=[5])[0].end_ms == pytest.approx(500.0)
