"""Who has the floor, on scripted timelines: one character at a time, never over a person mid-utterance,
barge-in by the person answered or by speech for the speaker, not by bystanders."""

from __future__ import annotations

import pytest

from llmasos.addressing import Addressed
from llmasos.floor import Floor, Grant, Pause, Stop

pytestmark = pytest.mark.unit


def test_a_ready_reply_is_granted_when_the_floor_is_free() -> None:
    floor = Floor()
    assert floor.want("blacksmith", "ann") == [Grant("blacksmith", "ann")]
    assert floor.speaking == Grant("blacksmith", "ann")


def test_one_character_speaks_at_a_time_the_next_waits_in_order() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    assert floor.want("innkeeper", "bob") == []
    assert floor.want("quest_giver", "cat") == []
    assert floor.withdraw("blacksmith") == [Grant("innkeeper", "bob")]
    assert floor.withdraw("innkeeper") == [Grant("quest_giver", "cat")]
    assert floor.withdraw("quest_giver") == []
    assert floor.speaking is None


def test_a_character_waits_for_a_gap_in_anyones_speech() -> None:
    floor = Floor()
    floor.speech_started("ann")
    floor.speech_started("bob")
    assert floor.want("blacksmith", "ann") == []  # two people are mid-utterance
    assert floor.speech_ended("ann") == []  # Bob still speaks
    assert floor.speech_ended("bob") == [Grant("blacksmith", "ann")]


def test_the_person_answered_barges_in() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    assert floor.speech_started("ann") == [Stop("blacksmith", "barge_in")]


def test_with_pause_first_the_first_sound_of_the_person_answered_holds_the_reply() -> None:
    floor = Floor(pause_first=True)
    floor.want("blacksmith", "ann")
    assert floor.onset("bob") == []  # a bystander's sound holds nothing
    assert floor.onset("ann") == [Pause("blacksmith")]
    assert floor.in_speech == set()  # a sound is not yet speech: it keeps nobody waiting
    assert floor.speech_started("ann") == [Pause("blacksmith")]
    assert Floor().onset("ann") == []  # without pause_first, only speech stops a reply


def test_a_bystander_chatting_does_not_stop_the_character() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    assert floor.speech_started("bob") == []
    assert floor.addressed(Addressed("bob", None, "other_player")) == []
    assert floor.addressed(Addressed("bob", "innkeeper", "name")) == []  # for another character: it waits
    assert floor.speaking == Grant("blacksmith", "ann")


def test_speech_addressed_to_the_speaker_by_someone_else_stops_it() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    floor.speech_started("bob")
    assert floor.addressed(Addressed("bob", "blacksmith", "name")) == [Stop("blacksmith", "addressed")]


def test_a_stopped_reply_gives_the_floor_to_the_next_once_the_room_is_quiet() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    floor.want("innkeeper", "bob")
    floor.speech_started("ann")  # barge-in: the room stops the blacksmith, then withdraws it
    assert floor.withdraw("blacksmith") == []  # Ann is still speaking
    assert floor.speech_ended("ann") == [Grant("innkeeper", "bob")]


def test_a_newer_reply_replaces_the_characters_waiting_one() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    floor.want("innkeeper", "bob")
    floor.want("innkeeper", "ann")
    assert floor.waiting == [Grant("innkeeper", "ann")]


def test_the_person_answered_is_not_waited_for() -> None:
    floor = Floor()
    floor.speech_started("ann")  # her speech will carry the reply over or barge in: the room decides
    assert floor.want("blacksmith", "ann") == [Grant("blacksmith", "ann")]
    floor.withdraw("blacksmith")
    assert floor.want("innkeeper", "bob") == []  # Bob's answer waits for Ann's gap
    assert floor.speech_ended("ann") == [Grant("innkeeper", "bob")]


def test_a_dropped_waiting_reply_is_never_granted() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    floor.want("innkeeper", "bob")
    floor.withdraw("innkeeper")
    assert floor.withdraw("blacksmith") == []


def test_a_greeting_answers_nobody_and_nobody_barges_in_on_it_by_identity() -> None:
    floor = Floor()
    assert floor.want("innkeeper", None) == [Grant("innkeeper", None)]
    assert floor.speech_started("ann") == []  # the room decides what a greeting's listener may do


def test_the_one_to_one_timeline() -> None:
    """The 1:1 case, as a room: the greeting, a question, the reply, a barge-in, the next reply."""
    floor = Floor()
    assert floor.want("blacksmith", None) == [Grant("blacksmith", None)]
    assert floor.withdraw("blacksmith") == []
    floor.speech_started("ann")
    assert floor.speech_ended("ann") == []
    assert floor.want("blacksmith", "ann") == [Grant("blacksmith", "ann")]  # the reply, once ready
    assert floor.speech_started("ann") == [Stop("blacksmith", "barge_in")]
    floor.withdraw("blacksmith")
    assert floor.speech_ended("ann") == []
    assert floor.want("blacksmith", "ann") == [Grant("blacksmith", "ann")]


def test_a_character_holding_the_floor_keeps_it_for_its_next_reply() -> None:
    floor = Floor()
    floor.want("blacksmith", "ann")
    floor.want("innkeeper", "bob")
    assert floor.want("blacksmith", "cat") == [Grant("blacksmith", "cat")]  # its reply to Ann is ending
    assert floor.speech_started("cat") == [Stop("blacksmith", "barge_in")]
    assert floor.speech_started("ann") == []
