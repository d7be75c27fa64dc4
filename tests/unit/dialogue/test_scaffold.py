"""The scaffolding filter: the prompt read back never reaches the voice; everything else goes through as it is."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogue import ActionSpec, Character, ReplyAction
from dialogue.prompt import PLAYER_NAMES, PromptInput, build_messages, own_names, scaffolding
from dialogue.scaffold import Piece, ScaffoldFilter
from dialogue.testing import split_text

pytestmark = pytest.mark.unit


def brom() -> Character:
    return Character(id="smith", name="Brom Ironhand", persona="You are Brom Ironhand, the blacksmith.")


def make_filter(c: Character) -> ScaffoldFilter:
    return ScaffoldFilter(scaffolding(c), PLAYER_NAMES, own_names(c))


def run(text: str | list[Piece], cuts: list[int] | None = None) -> tuple[str, list[ReplyAction], ScaffoldFilter]:
    c = brom()
    f = make_filter(c)
    pieces: list[Piece] = [text] if isinstance(text, str) else text
    if cuts is not None and isinstance(text, str):
        pieces = list(split_text(text, cuts))
    out = [p for piece in pieces for p in f.feed([piece])] + f.close()
    spoken = "".join(p for p in out if isinstance(p, str))
    return spoken, [p for p in out if isinstance(p, ReplyAction)], f


def test_the_prompt_s_own_lines_are_left_out_to_the_end_of_their_line() -> None:
    spoken, _, f = run("The player said: Produced the block books.\nBrom Ironhand said: Aye.\nWell met, friend!")
    assert spoken == "Well met, friend!"
    assert f.removed == ["The player said: Produced the block books.", "Brom Ironhand said: Aye."]
    assert run("You remember about this player: - The player said: I like swords.")[0] == ""
    assert run("Right now: it rains. Scene: the forge.")[0] == ""


def test_the_list_after_an_echoed_header_is_left_out_too() -> None:
    spoken, _, _ = run("You remember about this player:\n- The player likes tea.\n- Brom said: hi\nSo, tea then?")
    assert spoken == "So, tea then?"
    assert run("Hi.\n- one thing\n- another")[0] == "Hi.\n- one thing\n- another"  # a list of its own: spoken


def test_an_echo_after_a_sentence_end_is_left_out_and_the_rest_of_the_line_with_it() -> None:
    assert run("Welcome back! The player said: hello there. How are you?")[0] == "Welcome back! "
    assert run("well, you know: the player said: hi")[0] == "well, you know: the player said: hi"  # mid-sentence


def test_transcript_lines_are_left_out() -> None:
    # as the packaged model wrote them
    assert run('The player just said: Any swords?\n\nBrom Ironhand\'s response is: "Aye, iron and steel."')[0] == ""
    assert run("The player says: Any swords?\nThe player responds: Yes.\nUser: hi")[0] == ""
    assert run("Brom Ironhand replied: Nope, iron and steel.\nWell met.")[0] == "Well met."
    assert run("The player: Hey, you have a sword.\nBrom Ironhand: Ah, aye, iron and steel.")[0] == (
        "Ah, aye, iron and steel."
    )
    for kept in ("The player looked at you, and said: no.", "Players: all welcome.", "Brom is my name and this: mine."):
        assert run(kept)[0] == kept  # narration, another word, more than three words before the colon


def test_a_speaker_label_is_left_out_and_the_words_kept() -> None:
    assert run("Brom Ironhand: Well met!")[0] == "Well met!"
    assert run("Brom: Well met! Brom: Again.")[0] == "Well met! Again."
    assert run('"Brom: The player said: hi"')[0] == ""


def test_nothing_is_held_back_but_a_sentence_start_that_could_still_be_scaffolding() -> None:
    c = brom()
    f = make_filter(c)
    assert f.feed(["Well"]) == ["Well"]
    assert f.feed([" met. The"]) == [" met. "]  # "The" could begin "The player said:"
    assert f.feed([" pl"]) == []
    assert f.feed(["ayer's sword"]) == []  # ... or "The player's sword is:"
    assert f.feed([", friend"]) == ["The player's sword, friend"]
    f = make_filter(c)
    assert f.feed(["Brom is my name"]) == []
    assert f.feed([" here"]) == ["Brom is my name here"]  # at most three words between a speaker and its colon
    f = make_filter(c)
    assert f.feed(["You"]) == []
    assert f.close() == ["You"]  # the end of the reply lets a held start through


def test_actions_keep_their_place_and_those_in_an_echo_are_dropped() -> None:
    wave, nod = ReplyAction("wave", {}, 0), ReplyAction("nod", {}, 0)
    spoken, actions, f = run(["The player said: hi ", wave, "there\n", "Hello ", nod, "friend."])
    assert spoken == "Hello friend."
    assert actions == [ReplyAction("nod", {}, len("Hello "))]
    assert f.dropped_actions == 1
    _, actions, _ = run(["Yes. The", wave, " old one."])  # held with a sentence start, then let through
    assert actions == [ReplyAction("wave", {}, len("Yes. The"))]


def test_every_scaffolding_opener_is_in_the_prompt() -> None:
    c = Character(
        id="smith", name="Brom Ironhand", persona="p", scenario="s", knowledge=("k",), actions=(ActionSpec("nod"),)
    )
    prompt = "\n".join(
        m.text for m in build_messages(PromptInput(c, "hi", memories=("m",), world="w", nudge=True))
    ).lower()
    assert [o for o in scaffolding(c) if o.lower() not in prompt] == ["You are Brom Ironhand"]  # a persona's start


@given(
    text=st.text(alphabet="aThe plyrsid:.\n- ", max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=8),
)
def test_chunking_does_not_change_what_is_let_through(text: str, cuts: list[int]) -> None:
    assert run(text, cuts)[0] == run(text)[0]
