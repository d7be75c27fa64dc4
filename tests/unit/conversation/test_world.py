"""The game talks to the character: `world` facts reach the prompt of the next replies (typed or spoken), and an
`action_result` is heard: a success goes into the history, a failure is answered, after the reply under way."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fakes import FakeTransport, make_conversation, play_until_final, start

from dialogue.testing import ScriptedChatModel
from rtc.errors import ProtocolError
from rtc.protocol import ActionResultMessage, TextMessage, WorldMessage, parse_client_message
from voice.types import SpeechStarted, Transcript, Utterance

pytestmark = pytest.mark.unit


async def _turn_over(t: FakeTransport, turn: int) -> None:
    while not [m for m in t.of("state") if m.get("turn") == turn and m["state"] == "listening"]:
        await t.play(5)


async def test_world_facts_reach_the_prompt_of_typed_and_spoken_turns_and_replace_the_last_set() -> None:
    model = ScriptedChatModel(scripts=[["Aye."]])
    conversation, t, listener, *_ = make_conversation(model)
    task = await start(conversation)
    t.inbox.put_nowait(WorldMessage(type="world", facts=["It is night", "The player holds a torch."]))
    t.inbox.put_nowait(TextMessage(type="text", text="What time is it?"))
    await _turn_over(t, 1)
    assert "Right now: It is night. The player holds a torch.\n\nWhat time is it?" == model.calls[0][-1].text
    t.inbox.put_nowait(WorldMessage(type="world", facts=["Dawn breaks."]))
    await asyncio.sleep(0)
    listener.events.put_nowait(SpeechStarted(at_s=0.0))
    listener.events.put_nowait(Utterance(np.zeros(16000, dtype=np.float32), 0.0, 1.0, "silence", index=0))
    listener.events.put_nowait(Transcript("And now?", "en", final=True, utterance=0))
    await _turn_over(t, 2)
    spoken = model.calls[1][-1].text
    assert spoken.startswith("Right now: Dawn breaks.") and "torch" not in spoken and spoken.endswith("And now?")
    t.inbox.put_nowait(WorldMessage(type="world", facts=[]))  # cleared
    t.inbox.put_nowait(TextMessage(type="text", text="Hello."))
    await _turn_over(t, 3)
    assert "Right now" not in model.calls[2][-1].text
    t.closed.set()
    await task


async def test_a_failed_action_is_answered_after_the_reply_and_a_success_is_known() -> None:
    model = ScriptedChatModel(
        scripts=[["Here, take it. [wave target=player] Mind the edge."], ["Oh, your pack is full!"]]
    )
    conversation, t, _, memory, manager = make_conversation(model)
    task = await start(conversation)
    t.inbox.put_nowait(TextMessage(type="text", text="Wave at me."))
    while not t.of("action"):  # released as playback reaches it
        await t.play(1)
    (action,) = t.of("action")
    assert action["name"] == "wave" and action["turn"] == 1
    # the game reports while the reply still speaks: it is answered once the reply is over, not over it
    assert not [m for m in t.of("state") if m.get("turn") == 1 and m["state"] == "listening"]
    t.inbox.put_nowait(ActionResultMessage(type="action_result", turn=1, action="wave", ok=False, reason="arm broken"))
    await play_until_final(t)
    await _turn_over(t, 1)
    assert not t.of("interrupted")
    await _turn_over(t, 2)
    # what the game said, alone: the recalled "Wave at me." repeats the history and is left out
    assert model.calls[1][-1].text == "(wave did not work: arm broken)"
    assert [m["text"] for m in t.of("reply") if m.get("final")] == [
        "Here, take it. Mind the edge.",
        "Oh, your pack is full!",
    ]
    t.inbox.put_nowait(ActionResultMessage(type="action_result", turn=2, action="nod", ok=True))
    t.inbox.put_nowait(TextMessage(type="text", text="Thanks."))
    await _turn_over(t, 3)
    assert model.calls[2][-1].text.startswith("(nod: done)\n\n")  # it knows the nod happened
    t.closed.set()
    await task
    assert "What happened: (wave did not work: arm broken)" in [m.text for m in memory.items]


async def test_an_action_result_for_no_such_turn_or_action_is_an_error_and_the_session_goes_on() -> None:
    conversation, t, *_ = make_conversation("Aye.")
    task = await start(conversation)
    t.inbox.put_nowait(ActionResultMessage(type="action_result", turn=7, action="wave", ok=False))
    error = await t.until(lambda m: m["type"] == "error")
    assert error["code"] == "bad_message" and "turn 7" in error["message"]
    t.inbox.put_nowait(TextMessage(type="text", text="Hello."))
    await _turn_over(t, 1)
    t.inbox.put_nowait(ActionResultMessage(type="action_result", turn=1, action="dance", ok=True))
    error = await t.until(lambda m: m["type"] == "error" and "dance" in m["message"])
    assert "wave, nod" in error["message"]
    t.closed.set()
    await task


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ('{"type": "world", "facts": "night"}', "facts"),
        ('{"type": "world", "facts": [""]}', "facts.0"),
        ('{"type": "world", "facts": [' + ",".join(['"x"'] * 21) + "]}", "facts"),
        ('{"type": "action_result", "turn": 0, "action": "wave", "ok": false}', "turn"),
        ('{"type": "action_result", "turn": 1, "action": "Wave!", "ok": true}', "action"),
        ('{"type": "action_result", "turn": 1, "action": "wave"}', "ok"),
    ],
)
def test_world_and_action_result_messages_are_bounded_and_checked(raw: str, problem: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code == "invalid_field" and f"{problem}:" in info.value.message


async def test_word_timings_follow_the_voice_for_captions() -> None:
    conversation, t, *_ = make_conversation("Aye, a fine blade. It costs ten gold.")
    task = await start(conversation)
    t.inbox.put_nowait(TextMessage(type="text", text="How much?"))
    reply = await play_until_final(t)
    words = [w for m in t.of("words") for w in m["words"]]
    assert all(m["turn"] == 1 for m in t.of("words"))
    assert [w["text"] for w in words] == reply["text"].split()
    assert [reply["text"][w["start"] :].startswith(w["text"]) for w in words] == [True] * len(words)
    starts = [w["at_ms"] for w in words]
    assert starts == sorted(starts) and all(w["end_ms"] >= w["at_ms"] for w in words)
    speaking = next(i for i, m in enumerate(t.sent) if m["type"] == "state" and m["state"] == "speaking")
    assert min(i for i, m in enumerate(t.sent) if m["type"] == "words") > speaking
    t.closed.set()
    await task


async def test_visemes_come_with_the_words_on_the_reply_audio_clock() -> None:
    conversation, t, *_ = make_conversation("Aye, a fine blade. It costs ten gold.")
    task = await start(conversation)
    t.inbox.put_nowait(TextMessage(type="text", text="How much?"))
    await play_until_final(t)
    visemes = t.of("viseme")
    assert len(visemes) == len(t.of("words")) and all(m["turn"] == 1 for m in visemes)
    onsets = [m["at_ms"] + ms for m in visemes for ms, _ in m["visemes"]]
    assert onsets == sorted(onsets)
    words = [w for m in t.of("words") for w in m["words"]]
    # each stretch's shapes start at its first word and close the mouth by its last word's end
    for m, first in zip(visemes, [ws["words"][0] for ws in t.of("words")], strict=True):
        assert m["at_ms"] <= first["at_ms"] and m["visemes"][-1][1] == "sil"
    assert words[-1]["end_ms"] == visemes[-1]["at_ms"] + visemes[-1]["visemes"][-1][0]
    assert {v for m in visemes for _, v in m["visemes"]} >= {"aa", "sil", "DD"}
    t.closed.set()
    await task
