"""The conversation loop: recall into the prompt, remember what was heard, one printed line per reply."""

from __future__ import annotations

import io

import pytest
from fakes import FakeMemory

from dialogue import Backend, BackendError, Character, DialogueManager, ReplyAction, ReplySentence
from dialogue.testing import ScriptedChatModel
from llmasos.chat import ChatOptions, ChatSession, run_text_chat
from memory import MemoryRecallError, Recalled

pytestmark = pytest.mark.unit


Script = list[str]


def conversation(
    character: Character, memory: FakeMemory, player: str, *scripts: Script
) -> tuple[ChatSession, ScriptedChatModel]:
    model = ScriptedChatModel(scripts=list(scripts))
    manager = DialogueManager(Backend("fake", model), character)
    return ChatSession(manager, memory, player, ChatOptions(top_k=3, recall_budget_s=0.1)), model


async def test_recalled_memories_go_into_the_prompt_and_heard_text_is_remembered(character: Character) -> None:
    memory = FakeMemory()
    await memory.remember("tester", "alice", "Alice's dog is called Rex.")
    await memory.remember("tester", "bob", "Bob hates dogs.")
    talk, model = conversation(character, memory, "alice", ["Rex is a fine name. [nod] Woof!"])
    events = [e async for e in talk.turn("What is my dog called?")]
    assert ReplyAction("nod", {}, 20) in events
    assert memory.recalls == [("tester", "alice", "What is my dog called?", 3)]
    prompt = "\n".join(m.text for m in model.calls[0])
    assert "Alice's dog is called Rex." in prompt and "Bob" not in prompt
    assert [m.text for m in talk.last_prompt] == [m.text for m in model.calls[0]]
    await talk.heard(len("Rex is a fine name."))
    texts = [(m.player, m.text) for m in memory.items[2:]]
    assert texts == [("alice", "The player said: What is my dog called?"), ("alice", "Tess said: Rex is a fine name.")]


async def test_an_unreported_reply_counts_as_heard_in_full(character: Character) -> None:
    memory = FakeMemory()
    talk, _ = conversation(character, memory, "p", ["One."], ["Two."])
    [e async for e in talk.turn("a")]
    [e async for e in talk.turn("b")]
    await talk.heard()
    assert [m.text for m in memory.items] == [
        "The player said: a",
        "Tess said: One.",
        "The player said: b",
        "Tess said: Two.",
    ]


async def test_text_loop_prints_one_line_per_reply(character: Character) -> None:
    memory = FakeMemory()
    talk, _ = conversation(character, memory, "p", ["Hello [wave target=player] friend. ", "Bye now."], ["Sure."])
    lines = iter(["hi\n", "\n", "again\n", ""])

    async def read_line() -> str:
        return next(lines)

    out, prompts = io.StringIO(), io.StringIO()
    assert await run_text_chat(talk, read_line, out, prompts) == 2
    assert out.getvalue().splitlines() == ["Tess: Hello friend. [wave target=player] Bye now. ", "Tess: Sure. "]
    assert prompts.getvalue().count("--- end of prompt") == 2
    assert "The player said: hi" in prompts.getvalue().split("--- end of prompt")[1]
    assert len(memory.items) == 4


async def test_a_failed_reply_does_not_end_the_conversation(character: Character) -> None:
    class Broken(ScriptedChatModel):
        async def _astream(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
            raise BackendError("endpoint down", retryable=True)
            yield

    memory = FakeMemory()
    talk = ChatSession(
        DialogueManager(Backend("fake", Broken(scripts=[[]])), character), memory, "p", ChatOptions(top_k=1)
    )
    lines = iter(["one\n", "two\n", ""])

    async def read_line() -> str:
        return next(lines)

    out = io.StringIO()
    assert await run_text_chat(talk, read_line, out) == 2
    assert out.getvalue().splitlines() == ["Tess: (no reply: endpoint down)"] * 2


async def test_no_recall_when_top_k_is_zero(character: Character) -> None:
    memory = FakeMemory()
    manager = DialogueManager(Backend("fake", ScriptedChatModel(scripts=[["Ok."]])), character)
    talk = ChatSession(manager, memory, "p", ChatOptions(top_k=0))
    events = [e async for e in talk.turn("hi")]
    assert memory.recalls == [] and events[0] == ReplySentence("Ok.", 0)


class DegradedMemory(FakeMemory):
    """Recall cannot answer, as the real store reports it: MemoryRecallError."""

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        raise MemoryRecallError("memory recall took longer than 0.1 s", reason="timeout")


async def test_a_degraded_recall_leaves_the_memories_out_and_the_reply_goes_on(character: Character) -> None:
    memory = DegradedMemory()
    await memory.remember("tester", "alice", "Alice's dog is called Rex.")
    talk, model = conversation(character, memory, "alice", ["I forget."])
    await talk.warm_up()
    events = [e async for e in talk.turn("What is my dog called?")]
    assert events[0] == ReplySentence("I forget.", 0)
    assert "Rex" not in "\n".join(m.text for m in model.calls[0])
