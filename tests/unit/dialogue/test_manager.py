"""The dialogue manager on a scripted chat model: events, history of what was heard, prompts, drops."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk

from dialogue import (
    Backend,
    BackendUnavailableError,
    Character,
    DialogueManager,
    HistoryEntry,
    ManagerOptions,
    ReplyAction,
    ReplyDone,
    ReplyEvent,
    ReplySentence,
)
from dialogue.prompt import MEMORY_HEADER
from dialogue.testing import ScriptedChatModel, tool_call_chunk
from dialogue.worker import WorkerOptions, start_worker

pytestmark = pytest.mark.unit


def manager(character: Character, *scripts: list, native_tools: bool = False, **opts: int) -> DialogueManager:  # type: ignore[type-arg]
    model = ScriptedChatModel(scripts=list(scripts))
    return DialogueManager(Backend("fake", model, native_tools=native_tools), character, ManagerOptions(**opts))


async def collect(m: DialogueManager, text: str = "hi", **kw: object) -> list[ReplyEvent]:
    return [e async for e in m.reply(text, **kw)]  # type: ignore[arg-type]


async def test_streams_sentences_actions_then_done(character: Character) -> None:
    m = manager(character, ["Hello there", "! [wave target=pl", "ayer] How are", " you?"])
    events = await collect(m)
    assert events == [
        ReplySentence("Hello there!", 0),
        ReplyAction("wave", {"target": "player"}, 13),
        ReplySentence("How are you?", 13),
        ReplyDone("Hello there! How are you?", dropped=0),
    ]
    assert m.history == (HistoryEntry("player", "hi"), HistoryEntry("character", "Hello there! How are you?"))


async def test_history_keeps_only_what_was_heard(character: Character) -> None:
    m = manager(character, ["First sentence here. Second one."], ["Next."])
    await collect(m, "one")
    m.heard(len("First sentence"))
    assert m.last_reply == "First sentence"
    await collect(m, "two")
    m.heard(0)
    assert m.history == (
        HistoryEntry("player", "one"),
        HistoryEntry("character", "First sentence"),
        HistoryEntry("player", "two"),
    )
    prompt = m.messages("three")
    # a reply nobody heard leaves the player's words, which join their next ones: the roles alternate
    assert [msg.type for msg in prompt] == ["system", "human", "ai", "human"]
    assert prompt[2].text == "First sentence"
    assert prompt[3].text == "two\n\nthree"


async def test_a_cancelled_reply_keeps_the_spoken_part(character: Character) -> None:
    m = manager(character, ["Part one. ", "Part two. ", "Part three."])
    stream = m.reply("hi")
    first = await anext(stream)
    assert first == ReplySentence("Part one.", 0)
    await stream.aclose()  # barge-in
    assert m.last_reply == "Part one."


async def test_lines_overheard_in_a_room_are_history_and_a_reply_never_reads_them_back(character: Character) -> None:
    m = manager(character, ["Ann: shall we go?\nBob said: yes.\nAye, I heard."], history_turns=2)
    m.hear_others(["Ann", "Bob"])
    m.overheard("Ann", "Shall we go?")
    m.overheard("Bob", "  ")  # nothing said: nothing kept
    events = await collect(m, "Bob: Brom, what did she say?")
    assert [e.text for e in events if isinstance(e, ReplySentence)] == ["Aye, I heard."]
    assert m.history == (
        HistoryEntry("room", "Ann: Shall we go?"),
        HistoryEntry("player", "Bob: Brom, what did she say?"),
        HistoryEntry("character", "Aye, I heard."),
    )
    for i in range(3):  # overheard lines count toward the cap; the history never starts with the character
        m.overheard("Ann", f"line {i}")
    m.messages("next")  # the window is cut when a prompt is made
    assert len(m.history) <= 4 and m.history[0].role != "character"
    assert m.history[-1] == HistoryEntry("room", "Ann: line 2")


async def test_history_is_capped_in_steps(character: Character) -> None:
    model = ScriptedChatModel(scripts=[["Ok."]])
    m = DialogueManager(Backend("fake", model), character, ManagerOptions(history_turns=4))
    for i in range(8):
        await collect(m, f"q{i}")
    # exchanges before each turn's words: over the cap, the oldest go down to half of it, so the prompt's
    # prefix changes every few turns, not every turn (a local engine reuses the cached prefix)
    assert [(len(call) - 2) // 2 for call in model.calls] == [0, 1, 2, 3, 4, 2, 3, 4]
    assert [msg.text for msg in model.calls[-1][1::2]] == ["q3", "q4", "q5", "q6", "q7"]


async def test_a_reply_taken_back_does_not_slide_the_history(character: Character) -> None:
    # a reply prepared in the player's pause, taken back when they spoke on, at the cap: the next prompt keeps
    # the window the cached prefix was computed for
    model = ScriptedChatModel(scripts=[["Ok."]])
    m = DialogueManager(Backend("fake", model), character, ManagerOptions(history_turns=2))
    for i in range(2):
        await collect(m, f"q{i}")
    await collect(m, "my brother went north,")
    m.retract("my brother went north,")
    await collect(m, "my brother went north, and he has not come back.")
    held, final = model.calls[-2], model.calls[-1]
    assert [msg.text for msg in final[:-1]] == [msg.text for msg in held[:-1]]


async def test_memories_world_and_actions_are_in_the_prompt(character: Character) -> None:
    model = ScriptedChatModel(scripts=[["Ok."]])
    m = DialogueManager(Backend("fake", model), character)
    await collect(m, "hello", memories=["The player's name is Alice."], world="It is raining.")
    system, last = model.calls[0][0].text, model.calls[0][-1].text
    assert "[give_item item=sword|map target=player]" in system and character.persona in system
    # what changes every turn comes last (the system message stays the same: a cached prefix)
    assert last == f"Right now: It is raining.\n\n{MEMORY_HEADER}\n- The player's name is Alice.\n\nhello"
    assert MEMORY_HEADER not in system and "raining" not in system
    # the history keeps the player's words only
    assert m.history[0].text == "hello"


async def test_native_tools_are_bound_and_validated(character: Character, caplog: pytest.LogCaptureFixture) -> None:
    script = [
        "Take it.",
        tool_call_chunk(0, "give_item", '{"item": "sw'),
        tool_call_chunk(0, None, 'ord", "target": "player"}'),
        tool_call_chunk(1, "fly", "{}"),
        tool_call_chunk(2, "set_volume", '{"level": "loud"}'),
        tool_call_chunk(3, "nod", "not json"),
    ]
    model = ScriptedChatModel(scripts=[script])
    m = DialogueManager(Backend("fake", model, native_tools=True), character)
    with caplog.at_level(logging.WARNING, logger="dialogue.manager"):
        events = await collect(m)
    assert [t["function"]["name"] for t in model.bound_tools] == [a.name for a in character.actions]
    assert "calling the tools" in model.calls[0][0].text and "[nod]" not in model.calls[0][0].text
    assert [e for e in events if isinstance(e, ReplyAction)] == [
        ReplyAction("give_item", {"item": "sword", "target": "player"}, 8)
    ]
    assert events[-1] == ReplyDone("Take it.", dropped=3)
    reasons = [r.reason for r in caplog.records if r.getMessage() == "world action dropped"]  # type: ignore[attr-defined]
    assert len(reasons) == 3
    assert "not declared" in reasons[0] and "integer" in reasons[1] and "not valid JSON" in reasons[2]


async def test_a_reply_cut_by_the_token_cap_drops_its_unfinished_sentence(character: Character) -> None:
    end = AIMessageChunk(content="", response_metadata={"finish_reason": "length"})
    m = manager(character, ["I made it. And then I", end])
    events = await collect(m)
    assert [e for e in events if isinstance(e, ReplySentence)] == [ReplySentence("I made it.", 0)]
    assert isinstance(events[-1], ReplyDone) and events[-1].full_text.strip() == "I made it."
    assert m.last_reply == "I made it."


async def test_an_empty_reply(character: Character) -> None:
    m = manager(character, [])  # nothing, asked twice: the fallback line (test_reply_recovery.py)
    line = ManagerOptions().fallback
    assert await collect(m) == [ReplySentence(line, 0), ReplyDone(line, 0, recovery="fallback")]
    assert m.history == (HistoryEntry("player", "hi"), HistoryEntry("character", line))


def test_llamacpp_missing_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    with pytest.raises(BackendUnavailableError, match="make install"):
        start_worker(WorkerOptions(model=tmp_path / "m.gguf"))


async def test_a_turns_context_is_its_own_and_the_history_keeps_the_words(character: Character) -> None:
    # the prompt grows by an exchange a turn: the memories and world of a turn are in that turn's prompt only,
    # so a turn computes its context and words, the same amount on the tenth turn as on the second
    model = ScriptedChatModel(scripts=[["Ok."], ["Fine."]])
    m = DialogueManager(Backend("fake", model), character)
    await collect(m, "hello", memories=["Ann likes tea."], world="It rains.")
    await collect(m, "more", memories=["Ann has a dog."])
    first, second = ([msg.text for msg in call] for call in model.calls)
    assert second[: len(first) - 1] == first[:-1]  # the system message and the history before: the same
    assert "Ann likes tea." in first[-1] and "It rains." in first[-1] and first[-1].endswith("hello")
    assert second[len(first) - 1 : len(first) + 1] == ["hello", "Ok."]  # the words, without their context
    assert "Ann has a dog." in second[-1] and not any("Ann likes tea." in text for text in second)
    assert m.history[0].text == "hello"


async def test_warm_computes_the_next_prompt_s_prefix_ahead(character: Character) -> None:
    model = ScriptedChatModel(scripts=[["Ok."], ["x"], ["Fine."]])
    cold = DialogueManager(Backend("fake", model), character)
    await cold.warm()
    assert model.calls == []  # an engine without a prompt cache gains nothing from it
    m = DialogueManager(Backend("fake", model, prefix_cache=True), character)
    await collect(m, "hello", memories=["Ann likes tea."])
    await m.warm()
    await collect(m, "more")
    reply, warm, nxt = ([msg.text for msg in call] for call in model.calls)
    assert warm == nxt[:-1] and warm[-1] == "Ok."  # exactly the next prompt, but for the player's next words
    assert len(m.history) == 4  # warming leaves no trace in the history


async def test_a_memory_that_repeats_the_history_is_left_out(character: Character) -> None:
    # recall ranks this session's own lines high; the prompt already holds them in the history
    model = ScriptedChatModel(scripts=[["Fine steel, ten gold."], ["Aye."]])
    m = DialogueManager(Backend("fake", model), character)
    await collect(m, "How much is a sword?")
    recalled = [
        "The player said: How much is a sword?",
        "Brom Ironhand said: Fine steel, ten gold.",
        "The player said: My name is Arin, a hunter from the eastern hills.",
    ]
    await collect(m, "That is a lot.", memories=recalled)
    last = model.calls[-1][-1].text
    assert last == f"{MEMORY_HEADER}\n- {recalled[2]}\n\nThat is a lot."
