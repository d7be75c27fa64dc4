"""A room with fakes of our own protocols: two characters, three people, each with a scripted listener;
who is answered, what everyone is told, who may interrupt whom, one voice at a time, memory per player."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fakes import CHARACTER, FakeMemory, FakeTransport, FakeVoice, ScriptedListener

from dialogue import Backend, Character, DialogueManager
from dialogue.testing import ScriptedChatModel
from llmasos.room import Room
from llmasos.services import ConversationOptions, Services
from rtc.audio import OutboundAudioTrack
from rtc.protocol import FocusMessage, WorldMessage
from voice.types import SpeechStarted, Transcript, Utterance

pytestmark = pytest.mark.unit

HILDA = Character(id="innkeeper", name="Hilda", persona="An innkeeper.", role="innkeeper")
NAMES = {"ann": "Ann", "bob": "Bob", "cat": "Cat"}
LONG = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen."


class Tavern:
    def __init__(self, replies: dict[str, str]) -> None:
        self.memory = FakeMemory()
        self.listeners = {p: ScriptedListener() for p in NAMES}
        order = iter(self.listeners.values())
        services = Services(open_listener=lambda: next(order), tts=FakeVoice(), memory=self.memory)
        self.room = Room(services, ConversationOptions(greet=False, preemptive=False), room_id="tavern")
        self.voices: dict[str, OutboundAudioTrack] = {}
        self.models: dict[str, ScriptedChatModel] = {}
        for character in (CHARACTER, HILDA):
            model = ScriptedChatModel(scripts=[[replies[character.id]]])
            self.models[character.id] = model
            voice = OutboundAudioTrack(200, clock=lambda: 0.0, sleep=FakeTransport._no_sleep)
            self.voices[character.id] = voice
            self.room.add_character(DialogueManager(Backend("fake", model), character), FakeVoice(), voice)
        self.t = {p: FakeTransport() for p in NAMES}
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Tavern:
        for player, name in NAMES.items():
            self.tasks.append(asyncio.create_task(self.room.join(player, name, self.t[player])))
            await self.t[player].until(lambda m: m["type"] == "room" and len(m["participants"]) == len(self.tasks))
        return self

    async def __aexit__(self, *_: object) -> None:
        for t in self.t.values():
            t.closed.set()
        await asyncio.gather(*self.tasks)

    def say(self, player: str, text: str, utterance: int = 0) -> None:
        events = self.listeners[player].events
        events.put_nowait(SpeechStarted(at_s=0.0))
        events.put_nowait(Utterance(np.zeros(16000, dtype=np.float32), 0.0, 1.0, "silence", index=utterance))
        events.put_nowait(Transcript(text, "en", final=True, utterance=utterance))

    async def play(self, character: str, frames: int = 5) -> None:
        for _ in range(frames):
            await self.voices[character].recv()
            await asyncio.sleep(0)

    async def play_until_listening(self, character: str, turn: int) -> None:
        watch = self.t["ann"]
        while not [m for m in watch.of("state") if m.get("turn") == turn and m["state"] == "listening"]:
            await self.play(character)

    def addressed(self, player: str = "cat") -> list[tuple[str, str | None, str]]:
        return [(m["speaker"], m.get("character"), m["reason"]) for m in self.t[player].of("addressed")]


async def test_a_named_character_answers_and_everyone_is_told_who_spoke_and_who_answers() -> None:
    async with Tavern({"smith": "Aye, swords.", "innkeeper": "Stew!"}) as tavern:
        tavern.say("ann", "Brom, any swords?")
        await tavern.t["cat"].until(lambda m: m["type"] == "state" and m["state"] == "speaking")
        await tavern.play_until_listening("smith", 1)
        for t in tavern.t.values():
            (transcript,) = t.of("transcript")
            assert transcript == {
                "type": "transcript", "text": "Brom, any swords?", "final": True, "turn": 1, "speaker": "ann",
                "name": "Ann",
            }  # fmt: skip
            assert [m["character"] for m in t.of("reply")] == ["smith"] * len(t.of("reply"))
        assert tavern.addressed() == [("ann", "smith", "name")]
    remembered = {(m.character, m.player, m.text) for m in tavern.memory.items}
    # what each heard, under the player who said it or whom the reply answered, by name
    assert remembered == {
        ("smith", "ann", "Ann said: Brom, any swords?"),
        ("smith", "ann", "Brom said: Aye, swords."),
        ("innkeeper", "ann", "Ann said: Brom, any swords?"),
        ("innkeeper", "ann", "Brom said: Aye, swords."),
    }


async def test_a_character_knows_what_it_overheard_and_forgetting_a_player_forgets_their_lines() -> None:
    async with Tavern({"smith": "Aye, swords.", "innkeeper": "Stew!"}) as tavern:
        tavern.say("bob", "Ann, shall we go?")
        await tavern.t["cat"].until(lambda m: m["type"] == "addressed")
        tavern.say("ann", "Brom, any swords?")
        await tavern.t["cat"].until(lambda m: m["type"] == "state" and m["state"] == "speaking")
        await tavern.play_until_listening("smith", 1)
        hilda = tavern.room.seats["innkeeper"].manager
        brom = tavern.room.seats["smith"].manager
        assert [(h.role, h.text) for h in hilda.history] == [
            ("room", "Bob: Ann, shall we go?"),
            ("room", "Ann: Brom, any swords?"),
            ("room", "Brom: Aye, swords."),
        ]
        assert [(h.role, h.text) for h in brom.history] == [
            ("room", "Bob: Ann, shall we go?"),
            ("player", "Ann: Brom, any swords?"),
            ("character", "Aye, swords."),
        ]
        # Hilda's next prompt has it all, and its roles alternate (one human message before her reply)
        prompt = hilda.messages("Cat: Hilda, what did he say?")
        assert [m.type for m in prompt] == ["system", "human"]
        assert prompt[1].text.splitlines() == [
            "Bob: Ann, shall we go?",
            "Ann: Brom, any swords?",
            "Brom: Aye, swords.",
            "",
            "Cat: Hilda, what did he say?",
        ]
    assert ("innkeeper", "bob", "Bob said: Ann, shall we go?") in {
        (m.character, m.player, m.text) for m in tavern.memory.items
    }
    await tavern.memory.forget("ann")
    assert {m.player for m in tavern.memory.items} == {"bob"}  # from every character's memory
    assert {m.character for m in tavern.memory.items} == {"smith", "innkeeper"}


async def test_nothing_one_room_hears_reaches_another_rooms_prompt() -> None:
    async with Tavern({"smith": "Aye.", "innkeeper": "Stew!"}) as first:
        first.say("ann", "Hilda, my secret is the red door.")
        await first.t["ann"].until(lambda m: m["type"] == "state" and m["state"] == "speaking")
        await first.play_until_listening("innkeeper", 1)
    async with Tavern({"smith": "Aye.", "innkeeper": "Stew!"}) as second:
        for seat in second.room.seats.values():
            assert not seat.manager.history
            assert "red door" not in " ".join(m.text for m in seat.manager.messages("Cat: hello"))


async def test_words_for_another_player_are_not_answered_and_a_follow_up_is() -> None:
    async with Tavern({"smith": "Aye.", "innkeeper": "Stew!"}) as tavern:
        tavern.say("bob", "Ann, shall we go?")
        await tavern.t["cat"].until(lambda m: m["type"] == "addressed")
        assert tavern.addressed() == [("bob", None, "other_player")]
        assert not tavern.t["cat"].of("reply")
        tavern.say("ann", "Hilda, a stew please.")
        await tavern.t["ann"].until(lambda m: m["type"] == "state" and m["state"] == "speaking")
        await tavern.play_until_listening("innkeeper", 1)
        tavern.say("ann", "And some bread.", utterance=1)
        await tavern.t["ann"].until(lambda m: m["type"] == "addressed" and m["reason"] == "follow_up")
        assert tavern.addressed()[-1] == ("ann", "innkeeper", "follow_up")


async def test_focus_sends_words_to_the_character_faced_and_a_bad_focus_is_an_error() -> None:
    async with Tavern({"smith": "Aye.", "innkeeper": "Stew!"}) as tavern:
        tavern.t["cat"].inbox.put_nowait(FocusMessage(type="focus", character="ghost"))
        error = await tavern.t["cat"].until(lambda m: m["type"] == "error")
        assert error["code"] == "bad_message" and "ghost" in error["message"]
        tavern.t["cat"].inbox.put_nowait(FocusMessage(type="focus", character="innkeeper"))
        tavern.say("cat", "A stew please.")
        await tavern.t["cat"].until(lambda m: m["type"] == "addressed")
        assert tavern.addressed() == [("cat", "innkeeper", "focus")]


async def test_the_person_answered_interrupts_a_bystander_does_not() -> None:
    async with Tavern({"smith": LONG, "innkeeper": "Stew!"}) as tavern:
        tavern.say("ann", "Brom, count for me.")
        await tavern.t["ann"].until(lambda m: m["type"] == "state" and m["state"] == "speaking")
        await tavern.play("smith", 10)
        tavern.listeners["bob"].events.put_nowait(SpeechStarted(at_s=0.0))  # a bystander speaks
        await tavern.play("smith", 5)
        assert not tavern.t["ann"].of("interrupted")
        tavern.listeners["ann"].events.put_nowait(SpeechStarted(at_s=2.0))  # the one it answers
        interrupted = await tavern.t["cat"].until(lambda m: m["type"] == "interrupted")
        assert interrupted["character"] == "smith" and interrupted["heard"].startswith("One two")


async def test_one_character_speaks_at_a_time() -> None:
    async with Tavern({"smith": LONG, "innkeeper": "Stew!"}) as tavern:
        tavern.say("ann", "Brom, count for me.")
        await tavern.t["ann"].until(lambda m: m["type"] == "state" and m["state"] == "speaking")
        tavern.say("bob", "Hilda, a stew please.")
        await tavern.t["bob"].until(lambda m: m["type"] == "addressed" and m["speaker"] == "bob")
        await tavern.play("smith", 10)
        assert tavern.voices["innkeeper"].written_samples == 0  # Hilda waits for the floor
        await tavern.play_until_listening("smith", 1)
        states = [(m.get("character"), m["state"]) for m in tavern.t["cat"].of("state") if m.get("turn")]
        speaking = [c for c, s in states if s == "speaking"]
        assert speaking == ["smith"]
        while not [m for m in tavern.t["cat"].of("reply") if m.get("final") and m["character"] == "innkeeper"]:
            await tavern.play("innkeeper")
        states = [(m.get("character"), m["state"]) for m in tavern.t["cat"].of("state") if m.get("turn")]
        assert states.index(("innkeeper", "speaking")) > states.index(("smith", "listening"))


async def test_joining_and_leaving_is_announced() -> None:
    async with Tavern({"smith": "Aye.", "innkeeper": "Stew!"}) as tavern:
        joined = tavern.t["ann"].of("room")
        assert [m["participant"] for m in joined] == ["ann", "bob", "cat"]
        assert joined[-1]["characters"] == ["smith", "innkeeper"]
        tavern.t["cat"].closed.set()
        left = await tavern.t["ann"].until(lambda m: m["type"] == "room" and m["event"] == "left")
        assert left["participant"] == "cat" and [p["id"] for p in left["participants"]] == ["ann", "bob"]


async def test_a_players_world_facts_are_in_the_replies_to_them_only() -> None:
    async with Tavern({"smith": "Aye.", "innkeeper": "Stew!"}) as tavern:
        tavern.t["ann"].inbox.put_nowait(WorldMessage(type="world", facts=["Ann holds a rusty sword"]))
        tavern.say("ann", "Brom, can you sharpen this?")
        await tavern.t["ann"].until(lambda m: m["type"] == "state" and m["state"] == "speaking")
        await tavern.play_until_listening("smith", 1)
        tavern.say("bob", "Brom, and my axe?")
        await tavern.t["bob"].until(lambda m: m["type"] == "state" and m["state"] == "speaking" and m["turn"] == 2)
        await tavern.play_until_listening("smith", 2)
        asked = {call[-1].text.rsplit("\n\n", 1)[-1]: call[-1].text for call in tavern.models["smith"].calls}
        assert "Right now: Ann holds a rusty sword." in asked["Ann: Brom, can you sharpen this?"]
        assert "rusty" not in asked["Bob: Brom, and my axe?"]
