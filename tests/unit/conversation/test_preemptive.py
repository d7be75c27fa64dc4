"""Preemptive replies: prepared from the tentative transcript during the endpointing silence, spoken only when
the utterance really ends on those words, and dropped without a trace when the user goes on."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fakes import FakeVoice, GatedModel, RecordingObserver, make_conversation, play_until_final, start

from llmasos.conversation import ConversationOptions
from rtc.protocol import TextMessage
from voice.types import SpeechPaused, SpeechResumed, SpeechStarted, Transcript, Utterance

pytestmark = pytest.mark.unit


def tentative(text: str, utterance: int = 0) -> Transcript:
    return Transcript(text, "en", final=False, tentative=True, utterance=utterance)


def final(text: str, utterance: int = 0) -> Transcript:
    return Transcript(text, "en", final=True, utterance=utterance)


def utterance(index: int = 0) -> Utterance:
    return Utterance(np.zeros(16_000, dtype=np.float32), 0.0, 1.3, "silence", index)


async def test_the_reply_is_ready_in_the_pause_and_spoken_when_the_turn_ends() -> None:
    voice, observer = FakeVoice(), RecordingObserver()
    conv, t, listener, memory, manager = make_conversation("Fine swords here.", voice=voice, observer=observer)
    task = await start(conv)
    for event in (SpeechStarted(0.0), SpeechPaused(1.0), tentative("Any swords?")):
        listener.events.put_nowait(event)
    await voice.synthesized.wait()  # the reply's first audio is made ...
    assert [m["type"] for m in t.sent] == ["state"]  # ... and nothing of it reached the player yet
    assert t.speaker.buffered_ms == 0
    listener.events.put_nowait(utterance())
    listener.events.put_nowait(final("Any swords?"))
    reply = await play_until_final(t)
    assert reply["text"] == "Fine swords here."
    kinds = [(m["type"], m.get("state") or m.get("final")) for m in t.sent]
    assert kinds[:4] == [("state", "listening"), ("transcript", True), ("state", "thinking"), ("reply", False)]
    assert t.of("transcript")[0]["turn"] == t.of("reply")[0]["turn"] == 1
    assert voice.spoken == ["Fine swords here."]  # made once, in the pause
    await t.until(lambda m: m["type"] == "metrics")
    marks = t.of("metrics")[0]["timeline_ms"]
    assert marks["asr_final"] <= marks["tts_first_audio"] <= marks["endpoint"]  # all ready before the endpoint
    t.closed.set()
    await task
    assert [m.text for m in memory.items] == ["The player said: Any swords?", "Brom said: Fine swords here."]
    assert [e.text for e in manager.history] == ["Any swords?", "Fine swords here."]
    assert observer.outcomes == ["done"]


async def test_speech_after_the_pause_drops_the_held_reply_without_a_trace() -> None:
    voice, observer = FakeVoice(), RecordingObserver()
    conv, t, listener, memory, manager = make_conversation("Aye.", voice=voice, observer=observer)
    task = await start(conv)
    for event in (SpeechStarted(0.0), SpeechPaused(0.8), tentative("Good morning.")):
        listener.events.put_nowait(event)
    await voice.synthesized.wait()
    listener.events.put_nowait(SpeechResumed(1.2))  # it was only a pause: "... do you have swords?"
    await observer.wait_outcome("discarded")
    assert [m["type"] for m in t.sent] == ["state"]
    for event in (
        SpeechPaused(2.5),
        tentative("Good morning. Do you have swords?"),
        utterance(),
        final("Good morning. Do you have swords?"),
    ):
        listener.events.put_nowait(event)
    await play_until_final(t)
    assert [m["turn"] for m in t.of("transcript")] == [1]  # the dropped reply never took a turn number
    assert {m["turn"] for m in t.of("reply")} == {1}
    t.closed.set()
    await task
    assert [e.text for e in manager.history] == ["Good morning. Do you have swords?", "Aye."]
    assert [m.text for m in memory.items] == [
        "The player said: Good morning. Do you have swords?",
        "Brom said: Aye.",
    ]
    assert observer.outcomes == ["discarded", "done"]


async def test_other_final_words_replace_the_held_reply() -> None:
    model = GatedModel(reply="Hello.", gate=asyncio.Event(), calls=[], called=asyncio.Event())
    conv, t, listener, _, manager = make_conversation(model)
    task = await start(conv)
    for event in (SpeechStarted(0.0), SpeechPaused(0.8), tentative("Hell no."), utterance()):
        listener.events.put_nowait(event)
    await model.wait_calls(1)
    listener.events.put_nowait(final("Hello."))  # the decode of the whole utterance heard it better
    await model.wait_calls(2)
    model.gate.set()
    await play_until_final(t)
    assert model.calls == ["Hell no.", "Hello."]
    assert [m["text"] for m in t.of("transcript")] == ["Hello."]
    t.closed.set()
    await task
    assert [e.text for e in manager.history] == ["Hello.", "Hello."]


async def test_typed_text_replaces_a_held_reply() -> None:
    model = GatedModel(reply="Yes.", gate=asyncio.Event(), calls=[], called=asyncio.Event())
    conv, t, listener, _, manager = make_conversation(model)
    task = await start(conv)
    for event in (SpeechStarted(0.0), SpeechPaused(0.8), tentative("Um")):
        listener.events.put_nowait(event)
    await model.wait_calls(1)
    t.inbox.put_nowait(TextMessage(type="text", text="Open the gate"))
    await model.wait_calls(2)
    model.gate.set()
    await play_until_final(t)
    assert {m["turn"] for m in t.of("reply")} == {1}
    t.closed.set()
    await task
    assert [e.text for e in manager.history] == ["Open the gate", "Yes."]


async def test_no_preemption_when_turned_off_or_while_the_character_has_a_turn() -> None:
    voice = FakeVoice()
    conv, t, listener, _, _ = make_conversation(
        "Right.", voice=voice, options=ConversationOptions(greet=False, preemptive=False)
    )
    task = await start(conv)
    for event in (SpeechStarted(0.0), SpeechPaused(0.8), tentative("Hi")):
        listener.events.put_nowait(event)
    listener.events.put_nowait(utterance())
    listener.events.put_nowait(final("Hi"))
    await play_until_final(t)
    assert voice.spoken == ["Right."]
    t.closed.set()
    await task


async def test_words_said_while_the_character_thinks_are_answered_together_once() -> None:
    model = GatedModel(reply="Good morning to you, and yes.", gate=asyncio.Event(), calls=[], called=asyncio.Event())
    conv, t, listener, memory, manager = make_conversation(model)
    task = await start(conv)
    listener.events.put_nowait(final("Good morning.", 0))
    await model.wait_calls(1)
    listener.events.put_nowait(final("Do you have swords?", 1))  # before the reply started: one answer to both
    await model.wait_calls(2)
    model.gate.set()
    await play_until_final(t)
    t.closed.set()
    await task
    assert model.calls[-1] == "Good morning. Do you have swords?"
    assert [e.text for e in manager.history] == ["Good morning. Do you have swords?", "Good morning to you, and yes."]
    assert memory.items[0].text == "The player said: Good morning. Do you have swords?"
