"""Whom an utterance is for, on scripted room timelines: names (and how ASR spells them), follow-ups, focus,
the 1:1 pair, another player, nobody."""

from __future__ import annotations

import pytest

from dialogue.types import Character
from llmasos.addressing import Addressed, Addressing, AddressOptions, Named

pytestmark = pytest.mark.unit

BROM = Character(id="blacksmith", name="Brom Ironhand", persona="p", role="blacksmith", aliases=("Smith",))
HILDA = Character(id="innkeeper", name="Hilda", persona="p", role="innkeeper")
MIRA = Character(id="quest_giver", name="Captain Mira", persona="p", role="captain", aliases=("Mira of the watch",))


def room(*characters: Character, players: dict[str, str] | None = None) -> Addressing:
    addressing = Addressing([Named.character(c) for c in characters], AddressOptions(follow_up_s=8.0))
    for player, name in (players or {"ann": "Ann", "bob": "Bob"}).items():
        addressing.join(player, name)
    return addressing


def said(addressing: Addressing, text: str, speaker: str = "ann", at_s: float = 100.0) -> tuple[str | None, str]:
    decision = addressing.decide(speaker, text, at_s)
    assert decision.speaker == speaker
    return decision.character, decision.reason


TAVERN = (HILDA, BROM)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Brom, do you have any swords?", "blacksmith"),  # first name, at the start
        ("Do you have any swords, Brom?", "blacksmith"),  # anywhere in the utterance
        ("Good evening Brom Ironhand.", "blacksmith"),  # full name
        ("Hey blacksmith, can you fix my axe?", "blacksmith"),  # role, lowercase
        ("Can the black smith fix my axe?", "blacksmith"),  # the role split by the ASR
        ("Mister Iron hand, a word please.", "blacksmith"),  # the surname split by the ASR
        ("Bram, do you have any swords?", "blacksmith"),  # misspelt, at a sentence start: a close spelling
        ("Good morning, Brahm. Any swords?", "blacksmith"),  # misspelt mid-sentence: the same consonants
        ("What do you think, Brome?", "blacksmith"),
        ("Hulda, a stew please.", "innkeeper"),
        ("One more ale, Hylda!", "innkeeper"),
        ("Innkeeper, is there a room free tonight?", "innkeeper"),
        ("Smith, how much for a horseshoe?", "blacksmith"),  # an alias
        ("Hilda, is Brom still at the forge?", "innkeeper"),  # two named: the first is spoken to
        ("Brom, Hilda says you make the best swords.", "blacksmith"),
    ],
)
def test_a_named_character_is_addressed(text: str, expected: str) -> None:
    assert said(room(*TAVERN), text) == (expected, "name")


@pytest.mark.parametrize(
    "text",
    [
        "Is Brom's forge open tomorrow?",  # a possessive mentions, it does not address
        "I broom the floor every morning.",  # a lowercase near-spelling is a word, not a name
        "Hold on, I need to think.",  # capitalised at the start, but not close enough to Hilda
        "We should watch the road.",  # a lowercase part of an alias is not a name
        "Do you have more swords?",
    ],
)
def test_words_that_only_look_like_names_address_nobody(text: str) -> None:
    assert said(room(*TAVERN), text) == (None, "none")


def test_naming_another_player_is_not_for_the_characters() -> None:
    tavern = room(*TAVERN)
    assert said(tavern, "Bob, shall we go?") == (None, "other_player")
    assert said(tavern, "Bob, ask Brom about the swords.") == (None, "other_player")  # Bob is named first
    assert said(tavern, "Brom, Bob wants a sword.") == ("blacksmith", "name")  # Brom is named first


def test_a_player_naming_themself_is_not_another_player() -> None:
    tavern = room(*TAVERN)
    tavern.answered("innkeeper", "ann", 95.0)
    assert said(tavern, "Ann is my name, by the way.") == ("innkeeper", "follow_up")


def test_a_follow_up_within_the_window_goes_to_who_answered() -> None:
    tavern = room(*TAVERN)
    tavern.answered("blacksmith", "ann", at_s=100.0)
    assert said(tavern, "And how much is it?", at_s=107.9) == ("blacksmith", "follow_up")
    assert said(tavern, "And how much is it?", at_s=108.1) == (None, "none")  # the window is over


def test_a_follow_up_is_per_player() -> None:
    tavern = room(*TAVERN)
    tavern.answered("blacksmith", "ann", at_s=100.0)
    assert said(tavern, "What did he say?", speaker="bob", at_s=101.0) == (None, "none")


def test_a_follow_up_that_names_someone_else_goes_to_them() -> None:
    tavern = room(*TAVERN)
    tavern.answered("blacksmith", "ann", at_s=100.0)
    assert said(tavern, "Hilda, what do you think?", at_s=102.0) == ("innkeeper", "name")
    assert said(tavern, "Bob, what do you think?", at_s=102.0) == (None, "other_player")


def test_focus_addresses_the_character_faced() -> None:
    tavern = room(*TAVERN)
    tavern.focus("ann", "innkeeper")
    assert said(tavern, "A stew, please.") == ("innkeeper", "focus")
    assert said(tavern, "What is that?", speaker="bob") == (None, "none")  # Ann's focus is Ann's
    assert said(tavern, "Brom, a sword?") == ("blacksmith", "name")  # a name beats the focus
    tavern.focus("ann", None)
    assert said(tavern, "A stew, please.") == (None, "none")


def test_a_follow_up_beats_the_focus() -> None:
    tavern = room(*TAVERN)
    tavern.focus("ann", "innkeeper")
    tavern.answered("blacksmith", "ann", at_s=99.0)
    assert said(tavern, "How much?") == ("blacksmith", "follow_up")


def test_focus_on_a_character_not_in_the_room_is_refused() -> None:
    with pytest.raises(ValueError, match="no character 'quest_giver'"):
        room(*TAVERN).focus("ann", "quest_giver")


def test_one_player_and_one_character_is_the_one_to_one_case() -> None:
    forge = room(BROM, players={"ann": "Ann"})
    assert said(forge, "Do you have any swords?") == ("blacksmith", "only_pair")
    forge.join("bob", "Bob")  # a second player: now only what is for the character is answered
    assert said(forge, "Do you have any swords?") == (None, "none")
    forge.leave("bob")
    assert said(forge, "Do you have any swords?") == ("blacksmith", "only_pair")


def test_one_character_with_two_characters_needs_a_reason() -> None:
    assert said(room(*TAVERN, players={"ann": "Ann"}), "Do you have any swords?") == (None, "none")


def test_titles_and_aliases_with_a_title() -> None:
    square = room(BROM, MIRA)
    assert said(square, "Captain, any work for me?") == ("quest_giver", "name")
    assert said(square, "Excuse me Mira, is there work?") == ("quest_giver", "name")
    assert said(square, "Is there work, Myra?") == ("quest_giver", "name")  # misspelt
    assert said(square, "I wish to speak to Mira of the watch.") == ("quest_giver", "name")


def test_leaving_forgets_a_players_follow_up_and_focus() -> None:
    tavern = room(*TAVERN)
    tavern.focus("ann", "innkeeper")
    tavern.answered("blacksmith", "ann", at_s=99.0)
    tavern.leave("ann")
    tavern.join("ann", "Ann")
    assert said(tavern, "How much?") == (None, "none")


def test_a_decision_names_its_speaker() -> None:
    assert room(*TAVERN).decide("bob", "Hilda!", 1.0) == Addressed("bob", "innkeeper", "name")


def test_the_vocabulary_a_room_tells_the_speech_recognition() -> None:
    from llmasos.addressing import vocabulary

    assert vocabulary([HILDA, BROM]) == "Hilda, innkeeper, Brom Ironhand, blacksmith, Smith."
    assert vocabulary([]) == ""
    assert vocabulary([HILDA], ["Ann", "Hilda"]) == "Hilda, innkeeper, Ann."  # the people in the room, once each


def test_a_decode_that_only_reads_the_prompt_back_is_no_speech() -> None:
    from voice.asr import prompt_echo

    prompt = "Hilda, innkeeper, Brom Ironhand, blacksmith."
    assert prompt_echo("Hilda, innkeeper.", prompt)
    assert prompt_echo("Brom Ironhand", prompt)
    assert not prompt_echo("Brom, a sword please.", prompt)
    assert not prompt_echo("", prompt)
