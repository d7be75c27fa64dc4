"""Backchannels do not stop the character (``pause_on_speech``): the player's speech pauses the reply at once,
"uh-huh" (or no words at all) lets it go on where it held, anything else stops it as a barge-in does."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fakes import FakeTransport, ScriptedListener, make_conversation, start

from dialogue.manager import DialogueManager
from llmasos.backchannel import BACKCHANNELS, is_backchannel
from llmasos.services import ConversationOptions
from voice.types import SpeechDropped, SpeechOnset, SpeechStarted, Transcript, Utterance

pytestmark = pytest.mark.unit

REPLY = "One two three four five six seven eight. Nine ten eleven twelve."
OPTIONS = ConversationOptions(greet=False, preemptive=False, backchannels=BACKCHANNELS)


async def _story_heard(
    options: ConversationOptions,
) -> tuple[FakeTransport, ScriptedListener, DialogueManager, asyncio.Task[None]]:
    """A conversation whose reply to "Tell me a story" is speaking and has played its first three words."""
    conv, t, listener, _, manager = make_conversation(REPLY, options=options)
    task = await start(conv)
    listener.events.put_nowait(Transcript("Tell me a story", "en", final=True, utterance=0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    await t.play(16)
    return t, listener, manager, task


@pytest.mark.parametrize(
    "text", ["Uh-huh.", "Yeah, yeah.", "Mm hmm", "MMM. .", "Mmm-hmmm", "Ohhh.", "okay", "Right. I see.", "", "..."]
)
def test_backchannels(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text", ["Wait, stop please.", "Yeah, but how much is it?", "No.", "okay then tell me", "Hmmmm, three swords"]
)
def test_not_backchannels(text: str) -> None:
    assert not is_backchannel(text)


async def test_uh_huh_pauses_the_reply_and_it_goes_on_where_it_held() -> None:
    t, listener, manager, task = await _story_heard(OPTIONS)  # three words heard
    listener.events.put_nowait(SpeechStarted(at_s=5.0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "paused")
    held = t.speaker.voice.buffered_ms
    silent = [(await t.speaker.recv()).to_ndarray() for _ in range(5)]
    assert not any(frame.any() for frame in silent)  # the voice stopped at once ...
    assert held > 0 and t.speaker.voice.buffered_ms == held  # ... and kept what it had not played
    listener.events.put_nowait(Utterance(np.zeros(8000, dtype=np.float32), 5.0, 5.5, "silence", index=1))
    listener.events.put_nowait(Transcript("Uh-huh.", "en", final=True, utterance=1))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking" and len(t.of("state")) > 3)
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    assert t.of("interrupted") == []
    said = [m for m in t.of("transcript") if m["final"]]
    assert [m["text"] for m in said] == ["Tell me a story", "Uh-huh."]
    assert said[1].get("turn") is None  # told, answered by nobody
    t.closed.set()
    await task
    assert manager.history[-1].text == REPLY  # the whole reply was heard
    assert [h.text for h in manager.history if h.role == "player"] == ["Tell me a story"]  # "uh-huh" is no turn


async def test_the_first_sound_holds_the_reply_and_a_click_lets_it_play_on() -> None:
    t, listener, manager, task = await _story_heard(OPTIONS)
    listener.events.put_nowait(SpeechOnset(at_s=5.0))  # held before it is known to be speech ...
    await t.until(lambda m: m["type"] == "state" and m["state"] == "paused")
    listener.events.put_nowait(SpeechDropped(at_s=5.1))  # ... and it was not
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking" and len(t.of("state")) > 3)
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    assert t.of("interrupted") == [] and [m["text"] for m in t.of("transcript")] == ["Tell me a story"]
    t.closed.set()
    await task
    assert manager.history[-1].text == REPLY


async def test_held_at_the_first_sound_then_words_stop_it() -> None:
    t, listener, manager, task = await _story_heard(OPTIONS)
    listener.events.put_nowait(SpeechOnset(at_s=5.0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "paused")
    listener.events.put_nowait(SpeechStarted(at_s=5.0))  # it is speech: the hold goes on, told once
    listener.events.put_nowait(Utterance(np.zeros(8000, dtype=np.float32), 5.0, 5.5, "silence", index=1))
    listener.events.put_nowait(Transcript("Wait, stop please.", "en", final=True, utterance=1))
    interrupted = await t.until(lambda m: m["type"] == "interrupted")
    assert interrupted["heard"] == "One two three"
    assert len([m for m in t.of("state") if m["state"] == "paused"]) == 1
    t.closed.set()
    await task
    assert manager.history[1].text == "One two three"


async def test_real_words_over_the_reply_stop_it() -> None:
    t, listener, manager, task = await _story_heard(OPTIONS)
    listener.events.put_nowait(SpeechStarted(at_s=5.0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "paused")
    listener.events.put_nowait(Utterance(np.zeros(8000, dtype=np.float32), 5.0, 5.5, "silence", index=1))
    listener.events.put_nowait(Transcript("Wait, stop please.", "en", final=True, utterance=1))
    interrupted = await t.until(lambda m: m["type"] == "interrupted")
    assert interrupted["heard"] == "One two three"
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking" and m.get("turn") == 2)
    t.closed.set()
    await task
    assert manager.history[1].text == "One two three"  # what was heard of the first reply


async def test_without_backchannels_speech_stops_the_reply_at_once() -> None:
    t, listener, _, task = await _story_heard(ConversationOptions(greet=False, preemptive=False))
    listener.events.put_nowait(SpeechOnset(at_s=5.0))  # without backchannels a first sound changes nothing
    listener.events.put_nowait(SpeechStarted(at_s=5.0))
    assert (await t.until(lambda m: m["type"] == "interrupted"))["heard"] == "One two three"
    assert not [m for m in t.of("state") if m["state"] == "paused"]
    t.closed.set()
    await task


async def test_what_plays_after_a_hold_is_timed_after_it() -> None:
    """The hold's place and length reach the client (paused: `at_ms`; speaking again: `at_ms`, `held_ms`), and
    what plays after it keeps one clock: an action after the hold is sent at its word's time as the client
    moves it (the words already sent, by `held_ms`; those sent after, as they are)."""
    reply = "One two. [wave target=player] Nine ten eleven twelve."  # "One two." fits the 200 ms buffer
    conv, t, listener, _, _ = make_conversation(reply, options=OPTIONS)
    task = await start(conv)
    listener.events.put_nowait(Transcript("Tell me a story", "en", final=True, utterance=0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    await t.until(lambda m: m["type"] == "words" and m["words"][0]["text"] == "Nine")  # written, not played
    await t.play(2)
    listener.events.put_nowait(SpeechStarted(at_s=5.0))
    paused = await t.until(lambda m: m["type"] == "state" and m["state"] == "paused")
    await t.play(10)  # 200 ms of silence while it holds
    listener.events.put_nowait(Utterance(np.zeros(8000, dtype=np.float32), 5.0, 5.5, "silence", index=1))
    listener.events.put_nowait(Transcript("Yeah.", "en", final=True, utterance=1))
    resumed = await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking" and "held_ms" in m)
    assert resumed["at_ms"] == paused["at_ms"] > 0 and resumed["held_ms"] == 200
    while not t.of("action"):
        await t.play(5)
    (action,) = t.of("action")
    resumed_at = t.sent.index(resumed)
    times = {}  # each word's time on the client's clock: moved by the hold if it was sent before it ended
    for i, m in enumerate(t.sent):
        if m["type"] == "words":
            moved = i < resumed_at
            for w in m["words"]:
                late = moved and w["at_ms"] >= resumed["at_ms"]
                times[w["text"].strip(".").lower()] = w["at_ms"] + (resumed["held_ms"] if late else 0)
    assert action["at_ms"] == times["nine"], (action, times, resumed)
    assert times["nine"] >= resumed["at_ms"] + resumed["held_ms"]  # it plays after the hold
    t.closed.set()
    await task
