"""The sentence/clause splitter: early pieces for TTS, exact offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogue import ReplySentence
from dialogue.splitter import SentenceSplitter, SplitterOptions
from dialogue.testing import split_text

pytestmark = pytest.mark.unit


def split(chunks: list[str], options: SplitterOptions | None = None) -> list[ReplySentence]:
    s = SentenceSplitter(options or SplitterOptions())
    return [p for c in chunks for p in s.feed(c)] + s.close()


def test_sentences_are_yielded_as_soon_as_they_end() -> None:
    s = SentenceSplitter()
    assert s.feed("Well met, traveller! What can") == [ReplySentence("Well met, traveller!", 0)]
    assert s.feed(" I forge?") == []  # the end of a sentence shows only at the next space
    assert s.feed(" ") == [ReplySentence("What can I forge?", 21)]
    assert s.close() == []


def test_long_clauses_are_cut_early_short_ones_not() -> None:
    text = "Yes, I have swords and axes and many fine horseshoes, all made here by hand."
    assert [p.text for p in split([text])] == [
        "Yes, I have swords and axes and many fine horseshoes,",
        "all made here by hand.",
    ]
    assert len(split([text], SplitterOptions(min_clause_words=20))) == 1


def test_abbreviations_initials_and_numbers_do_not_end_sentences() -> None:
    text = "Ask Mr. Smith or J. Doe about the 3.5 kg anvil. Then come back."
    assert [p.text for p in split([text])] == ["Ask Mr. Smith or J. Doe about the 3.5 kg anvil.", "Then come back."]


def test_max_words_and_newlines_cut() -> None:
    words = " ".join(["word"] * 12)
    pieces = split([words], SplitterOptions(max_words=5))
    assert [len(p.text.split()) for p in pieces] == [5, 5, 2]
    assert [p.text for p in split(["one\ntwo"])] == ["one", "two"]


def test_punctuation_only_pieces_are_not_spoken() -> None:
    assert [p.text for p in split(["... ! Hi."])] == ["... ! Hi."]
    assert split(["  ...  "]) == []


@given(text=st.text(alphabet="ab .,!?\n'\"", max_size=120), cuts=st.lists(st.integers(0, 120), max_size=10))
def test_offsets_point_into_the_text_whatever_the_chunking(text: str, cuts: list[int]) -> None:
    pieces = split(split_text(text, cuts))
    assert pieces == split([text])
    last = -1
    for p in pieces:
        assert text[p.start_char : p.start_char + len(p.text)] == p.text
        assert p.start_char > last
        last = p.start_char


def test_clauses_are_cut_early_only_in_the_first_sentence() -> None:
    # a later clause cut could be the last thing said before the token cap: later sentences go whole
    text = (
        "Aye, I have blades and axes and fine horseshoes, all of them. "
        "Now the steel ones, forged by my father, are dear."
    )
    assert [p.text for p in split([text])] == [
        "Aye, I have blades and axes and fine horseshoes,",
        "all of them.",
        "Now the steel ones, forged by my father, are dear.",
    ]
    assert len(split([text], SplitterOptions(clause_sentences=2))) == 4
    words = " ".join(["word"] * 12)
    assert [len(p.text.split()) for p in split([f"Hi. {words}"], SplitterOptions(max_words=5))] == [1, 12]


def test_a_capped_end_is_said_to_its_last_sentence_never_mid_phrase() -> None:
    s = SentenceSplitter()
    said = s.feed("I have two swords. The other one, the steel one, ")
    assert [p.text for p in said] == ["I have two swords."]  # the clause of the second sentence waits
    assert s.close(capped=True) == []  # the token cap cut that sentence: it is not said at all
    s = SentenceSplitter()
    s.feed("I have two swords. The other one, the steel one, ")
    assert [p.text for p in s.close()] == ["The other one, the steel one,"]  # not capped: all of it


def test_a_capped_first_sentence_is_said_to_its_last_clause() -> None:
    s = SentenceSplitter()
    assert [p.text for p in s.feed("Well, the sword my father made for the old king, ")] == [
        "Well, the sword my father made for the old king,"
    ]
    assert s.close(capped=True) == []  # nothing followed the clause already said
    s = SentenceSplitter()
    assert [p.text for p in s.feed("Well, the sword my father made for the old king, with a blade of")] == [
        "Well, the sword my father made for the old king,"
    ]
    assert s.close(capped=True) == []  # "with a blade of": no clause of its own to end on
    s = SentenceSplitter()
    assert s.feed("Well, now, the old sword, with") == []  # fewer than six words before each comma
    assert s.close(capped=True) == [ReplySentence("Well, now, the old sword,", 0)]
    s = SentenceSplitter()
    s.feed("And then I")
    assert s.close(capped=True) == []  # no boundary at all: nothing is said
    s = SentenceSplitter()
    s.feed("Here you are.")
    assert s.close(capped=True) == [ReplySentence("Here you are.", 0)]  # it ended right at the cap
