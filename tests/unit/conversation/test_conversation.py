"""The conversation loop on fakes of our own protocols: a scripted listener, a fake voice, a scripted model,
an in-memory store, and the real speaker track driven frame by frame (no wall clock)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fakes import RATE, WORD_MS, FakeVoice, make_conversation, play_until_final, start

from llmasos.turn import ONSET_KEEP_MS
from rtc.errors import ProtocolError
from rtc.protocol import PingMessage, PlayedMessage, TextMessage
from voice.types import SpeechStarted, Transcript

pytestmark = pytest.mark.unit


async def test_typed_text_gets_a_spoken_reply_with_timed_actions() -> None:
    conv, t, _, memory, manager = make_conversation("Welcome to my forge. [wave target=player] Swords are here.")
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Hi there"))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    assert not t.of("action")  # not yet played: not yet released
    while not t.of("reply") or not t.of("reply")[-1].get("final"):
        await t.play(5)
    final = t.of("reply")[-1]
    assert final["text"] == "Welcome to my forge. Swords are here."
    (action,) = t.of("action")
    assert action["name"] == "wave" and action["args"] == {"target": "player"}
    # the action stands before the 5th word, "Swords", on the reply audio's clock (which counts any silence
    # left on the stream while the voice made the second sentence)
    swords = next(w for m in t.of("words") for w in m["words"] if w["text"] == "Swords")
    assert action["at_ms"] == swords["at_ms"] >= 4 * WORD_MS
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    assert [m["state"] for m in t.of("state")] == ["listening", "thinking", "speaking", "listening"]
    metrics = t.of("metrics")[0]
    assert metrics["turn"] == 1
    marks = metrics["timeline_ms"]
    assert marks["recall_done"] <= marks["llm_first_token"] <= marks["llm_first_sentence"] <= marks["tts_first_audio"]
    t.closed.set()
    await task
    assert [m.text for m in memory.items] == [
        "The player said: Hi there",
        "Brom said: Welcome to my forge. Swords are here.",
    ]
    assert manager.history[-1].text == "Welcome to my forge. Swords are here."


async def test_barge_in_keeps_only_what_was_heard() -> None:
    conv, t, listener, memory, manager = make_conversation(
        "One two three four five six seven eight. [nod] Nine ten eleven twelve."
    )
    task = await start(conv)
    listener.events.put_nowait(Transcript("Tell me a story", "en", final=True, utterance=0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    await t.play(16)  # 320 ms: three words fully heard
    listener.events.put_nowait(SpeechStarted(at_s=5.0))  # the user talks over the character
    interrupted = await t.until(lambda m: m["type"] == "interrupted")
    assert interrupted["heard"] == "One two three"
    assert t.speaker.buffered_ms == 0  # the unplayed audio is gone at once
    silent = [(await t.speaker.recv()).to_ndarray() for _ in range(3)]
    assert not any(frame.any() for frame in silent)
    assert not t.of("action")  # the nod after word 8 was never played, so never sent
    assert not any(m.get("final") for m in t.of("reply"))
    t.closed.set()
    await task
    assert manager.history[-1].text == "One two three"
    assert memory.items[-1].text == "Brom said: One two three"


async def test_greeting_is_spoken_first() -> None:
    conv, t, _, memory, _ = make_conversation("unused", greet=True)
    task = await start(conv)
    reply = await t.until(lambda m: m["type"] == "reply")
    assert reply["text"] == "Hello there friend."
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    t.closed.set()
    await task
    assert memory.items == []  # a greeting is not a conversation turn


async def test_bad_messages_get_errors_and_the_session_goes_on() -> None:
    conv, t, _, _, _ = make_conversation("Fine. Thanks.")
    task = await start(conv)
    t.inbox.put_nowait(ProtocolError("not valid JSON", code="bad_json"))
    t.inbox.put_nowait(PingMessage(type="ping", id=3))
    t.inbox.put_nowait(TextMessage(type="text", text="How are you?"))
    error = await t.until(lambda m: m["type"] == "error")
    assert error["code"] == "bad_json"
    assert (await t.until(lambda m: m["type"] == "pong"))["id"] == 3
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    t.closed.set()
    await task


async def test_speech_before_the_reply_starts_is_answered_together() -> None:
    conv, t, listener, memory, _ = make_conversation("Yes. We have swords.")
    task = await start(conv)
    listener.events.put_nowait(Transcript("Good morning.", "en", final=True, utterance=0))
    listener.events.put_nowait(Transcript("Do you have any swords?", "en", final=True, utterance=1))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    while not any(m.get("final") for m in t.of("reply")):
        await t.play(5)
    t.closed.set()
    await task
    said = [m.text for m in memory.items if m.text.startswith("The player said")]
    assert said == ["The player said: Good morning. Do you have any swords?"]


async def test_a_reply_not_begun_when_the_player_goes_on_is_dropped_and_answered_with_what_follows() -> None:
    # the end-of-turn model ended "Good morning." at a pause, and the player goes on: the reply to it stops
    # unheard, and the player's next words are answered together with it
    conv, t, listener, memory, manager = make_conversation("Yes. We have swords.")
    task = await start(conv)
    listener.events.put_nowait(Transcript("Good morning.", "en", final=True, utterance=0))
    listener.events.put_nowait(SpeechStarted(at_s=1.4))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    assert t.speaker.written_samples == 0  # not a sound of it
    assert "speaking" not in [m["state"] for m in t.of("state")]
    assert manager.history == ()  # nor a word of it in the history
    listener.events.put_nowait(Transcript("Do you have any swords?", "en", final=True, utterance=1))
    final = await play_until_final(t)
    t.closed.set()
    await task
    assert final["turn"] == 2 and final["text"] == "Yes. We have swords."
    assert not t.of("interrupted")  # nothing was heard, so nothing was interrupted
    said = [m.text for m in memory.items if m.text.startswith("The player said")]
    assert said == ["The player said: Good morning. Do you have any swords?"]
    assert [e.text for e in manager.history] == ["Good morning. Do you have any swords?", "Yes. We have swords."]


async def test_a_dropped_reply_is_made_again_when_the_player_s_speech_had_no_words() -> None:
    conv, t, listener, memory, _ = make_conversation("Yes. We have swords.")
    task = await start(conv)
    listener.events.put_nowait(Transcript("Good morning.", "en", final=True, utterance=0))
    listener.events.put_nowait(SpeechStarted(at_s=1.4))  # a cough, a noise: ASR finds no words in it
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    listener.events.put_nowait(Transcript("", "en", final=True, utterance=1))
    final = await play_until_final(t)
    assert final["text"] == "Yes. We have swords." and final["turn"] == 2
    t.closed.set()
    await task
    assert [m.text for m in memory.items] == ["The player said: Good morning.", "Brom said: Yes. We have swords."]


async def test_closing_mid_reply_stores_what_was_heard() -> None:
    conv, t, _, memory, _ = make_conversation("Alpha beta gamma delta epsilon zeta eta theta.")
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Greek letters please"))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    await t.play(11)  # 220 ms: two words
    t.closed.set()  # the client vanished
    await task
    assert [m.text for m in memory.items] == ["The player said: Greek letters please", "Brom said: Alpha beta"]


async def test_heard_lines_feed_reflection() -> None:
    seen: list[tuple[str, str, str]] = []
    conv, t, _, _, _ = make_conversation("Fine, thanks.", reflect=lambda c, p, line: seen.append((c, p, line)))
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="How are you?"))
    await play_until_final(t)
    t.closed.set()
    await task
    assert seen == [("smith", "ann", "The player said: How are you?"), ("smith", "ann", "Brom said: Fine, thanks.")]


async def test_the_voice_s_silent_onset_is_not_played_and_timings_follow() -> None:
    class LateVoice(FakeVoice):
        """Every chunk starts with 60 ms of silence before its first word (as Piper's do)."""

        async def stream(self, text_chunks):  # type: ignore[no-untyped-def]
            lead = RATE * 60 // 1000
            async for chunk in super().stream(text_chunks):
                words = tuple(
                    dataclasses.replace(w, start_ms=w.start_ms + 60, end_ms=w.end_ms + 60) for w in chunk.words
                )
                pcm = np.concatenate([np.zeros(lead, dtype=np.int16), chunk.pcm])
                yield dataclasses.replace(chunk, pcm=pcm, words=words)

    conv, t, _, _, _ = make_conversation(
        "[wave target=player] Welcome to my forge. Swords are here.", voice=LateVoice()
    )
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="Hi there"))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    first = (await t.speaker.recv()).to_ndarray()
    assert np.abs(first).max() > 1000  # the first 20 ms frame already carries the voice
    final = await play_until_final(t)
    assert final["text"] == "Welcome to my forge. Swords are here."
    (action,) = t.of("action")
    assert action["at_ms"] == ONSET_KEEP_MS  # with the first word, 5 ms in: the cut silence moved the timings
    t.closed.set()
    await task


async def test_with_played_reports_the_heard_text_is_what_the_client_played() -> None:
    # the client plays well behind the encoder (a long jitter buffer): it says how far it got
    conv, t, listener, memory, manager = make_conversation("One two three four five six seven eight.")
    task = await start(conv)
    listener.events.put_nowait(Transcript("Count", "en", final=True, utterance=0))
    speaking = await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    await t.play(16)  # the encoder took 320 ms: three words
    t.inbox.put_nowait(PlayedMessage(type="played", turn=speaking["turn"], at_ms=110))  # the client: one word
    t.inbox.put_nowait(PingMessage(type="ping", id="after-played"))  # messages are handled in order
    await t.until(lambda m: m["type"] == "pong")
    listener.events.put_nowait(SpeechStarted(at_s=5.0))
    interrupted = await t.until(lambda m: m["type"] == "interrupted")
    assert interrupted["heard"] == "One"
    t.closed.set()
    await task
    assert manager.history[-1].text == "One"
    assert memory.items[-1].text == "Brom said: One"


async def test_with_played_reports_an_action_waits_for_the_client_s_playback() -> None:
    conv, t, listener, *_ = make_conversation("One two. [nod] Three four five six.")
    task = await start(conv)
    listener.events.put_nowait(Transcript("Nod", "en", final=True, utterance=0))
    speaking = await t.until(lambda m: m["type"] == "state" and m["state"] == "speaking")
    t.inbox.put_nowait(PlayedMessage(type="played", turn=speaking["turn"], at_ms=0))
    t.inbox.put_nowait(PingMessage(type="ping", id="after-played"))
    await t.until(lambda m: m["type"] == "pong")
    while not any(w["text"] == "Three" for m in t.of("words") for w in m["words"]):
        await t.play(1)
    three = next(w for m in t.of("words") for w in m["words"] if w["text"] == "Three")
    await t.play(15)  # the encoder is past the nod (at "Three"), the client reported nothing past 0
    assert not t.of("action")
    t.inbox.put_nowait(PlayedMessage(type="played", turn=speaking["turn"], at_ms=three["at_ms"] + 10))
    action = await t.until(lambda m: m["type"] == "action")
    assert action["name"] == "nod" and action["at_ms"] == three["at_ms"]
    t.closed.set()
    await task
