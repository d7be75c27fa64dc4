"""A spoken input never meets silence: empty replies are asked again or answered with a fallback line, the
prompt read back never reaches the voice, and a reply cut by the token cap ends at a sentence or clause."""

from __future__ import annotations

import dataclasses

import pytest
from fakes import RecordingObserver, make_conversation, play_until_final, start
from langchain_core.messages import AIMessageChunk

from dialogue import (
    Backend,
    Character,
    DialogueManager,
    HistoryEntry,
    ManagerOptions,
    ReplyAction,
    ReplyDone,
    ReplyEvent,
    ReplySentence,
)
from dialogue.prompt import nudge_text
from dialogue.testing import ScriptedChatModel
from rtc.protocol import TextMessage

pytestmark = pytest.mark.unit

SAID = "Produced the block books, which were the immediate predecessors of the true printed book."
CAPPED = AIMessageChunk(content="", response_metadata={"finish_reason": "length"})


def manager(character: Character, *scripts: list[str | AIMessageChunk]) -> tuple[DialogueManager, ScriptedChatModel]:
    model = ScriptedChatModel(scripts=list(scripts))
    return DialogueManager(Backend("fake", model), character), model


async def collect(m: DialogueManager, text: str = SAID) -> list[ReplyEvent]:
    return [e async for e in m.reply(text, memories=["The player likes books."])]


def sentences(events: list[ReplyEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, ReplySentence)]


async def test_an_empty_reply_is_asked_again_with_a_nudge(character: Character) -> None:
    m, model = manager(character, [""], ["Ah, the block books came first."])
    events = await collect(m)
    assert sentences(events) == ["Ah, the block books came first."]
    assert events[-1] == ReplyDone("Ah, the block books came first.", recovery="retried")
    assert m.last_done == events[-1]
    first, again = model.calls
    assert again[:-1] == first[:-1] and again[-1].text == f"{first[-1].text}\n\n{nudge_text(character)}"
    # the history keeps the turn as the player gave it (its context was this turn's only)
    assert m.history == (
        HistoryEntry("player", SAID),
        HistoryEntry("character", "Ah, the block books came first."),
    )


async def test_twice_nothing_to_say_gives_the_character_s_fallback_line(character: Character) -> None:
    m, model = manager(character, [""])
    events = await collect(m)
    default = ManagerOptions().fallback
    assert events == [ReplySentence(default, 0), ReplyDone(default, recovery="fallback")]
    assert len(model.calls) == 2 and m.last_reply == default
    own = dataclasses.replace(character, fallback="Hm. Tess has no words for that.")
    m, _ = manager(own, ["[wave target=player]"])  # only an action: nothing to hear
    events = await collect(m)
    assert [e for e in events if isinstance(e, ReplyAction)] == [ReplyAction("wave", {"target": "player"}, 0)] * 2
    assert sentences(events) == ["Hm. Tess has no words for that."]


async def test_no_words_in_means_no_retry(character: Character) -> None:
    m, model = manager(character, [""])
    assert await collect(m, "  ") == [ReplyDone("")]
    assert len(model.calls) == 1


async def test_the_prompt_read_back_never_reaches_the_voice(character: Character) -> None:
    echo = ["You remember about this player:", "\n- The player said: ", "I like books.\n- Tess said: Good."]
    m, _ = manager(character, echo, ["Books are a fine thing."])
    events = await collect(m)
    assert sentences(events) == ["Books are a fine thing."]
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.recovery == "retried" and done.echoes == 3
    assert m.last_reply == "Books are a fine thing."
    m, model = manager(character, ["The player said: ", SAID, "\nWell, printing came after them."])
    events = await collect(m)
    assert sentences(events) == ["Well, printing came after them."]
    assert events[-1] == ReplyDone("Well, printing came after them.", echoes=1)
    assert len(model.calls) == 1  # something was left to say: no need to ask again


async def test_a_capped_reply_ends_at_its_last_complete_sentence(character: Character) -> None:
    m, _ = manager(character, ["I have two swords. The other one,", " the steel one, ", CAPPED])
    events = await collect(m, "Which sword?")
    assert sentences(events) == ["I have two swords."]  # the second sentence's clause was never given to speech
    assert events[-1] == ReplyDone("I have two swords.")
    assert m.last_reply == "I have two swords."


async def test_a_capped_first_sentence_ends_at_a_clause_or_is_asked_again(character: Character) -> None:
    m, _ = manager(character, ["Well, the sword my father made for the old king, ", "with a blade", CAPPED])
    events = await collect(m, "Which sword?")
    assert sentences(events) == ["Well, the sword my father made for the old king,"]
    assert m.last_reply == "Well, the sword my father made for the old king,"
    m, _ = manager(character, ["And then I", CAPPED], ["I made it."])
    events = await collect(m, "What then?")
    assert sentences(events) == ["I made it."]
    assert events[-1] == ReplyDone("I made it.", recovery="retried")


async def test_a_cancelled_reply_leaves_no_last_done(character: Character) -> None:
    m, _ = manager(character, ["Part one. ", "Part two."])
    await collect(m, "hi")
    assert m.last_done is not None
    stream = m.reply("again")
    await anext(stream)
    await stream.aclose()
    assert m.last_done is None


async def test_the_conversation_counts_what_was_mended_in_its_metrics() -> None:
    observer = RecordingObserver()
    model = ScriptedChatModel(scripts=[[""], ["Aye, block books came first."], ["The player said: Hi."]])
    conv, t, _, memory, _ = make_conversation(model, observer=observer)
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text=SAID))
    assert (await play_until_final(t))["text"] == "Aye, block books came first."
    await observer.wait_outcome("done")
    assert observer.errors == ["empty_reply", "empty_reply_retried"]
    t.inbox.put_nowait(TextMessage(type="text", text="Hi."))
    while not any(m.get("final") and m.get("turn") == 2 for m in t.of("reply")):
        await t.play(5)
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 2)
    fallback = ManagerOptions().fallback
    assert [m["text"] for m in t.of("reply") if m.get("final")][-1] == fallback
    assert observer.errors[2:] == ["scaffold_echo", "empty_reply", "empty_reply_fallback"]
    t.closed.set()
    await task
    assert [m.text for m in memory.items][-1] == f"Brom said: {fallback}"
