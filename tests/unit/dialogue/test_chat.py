"""The conversation loop: recall into the prompt, remember what was heard, one printed line per reply."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator

import pytest

from dialogue import Backend, BackendError, Character, DialogueManager, ReplyAction, ReplySentence
from dialogue.testing import ScriptedChatModel
from llmasos.chat import ChatOptions, ChatSession, run_text_chat
from memory import Memory, MemoryKind, Recalled

pytestmark = pytest.mark.unit


class FakeMemory:
    """The MemoryStore protocol in a list; recall returns every memory of (character, player)."""

    def __init__(self) -> None:
        self.memories: list[Memory] = []
        self.recalls: list[tuple[str, str, str, int]] = []
        self._ids: Iterator[int] = itertools.count()

    async def remember(
        self, character: str, player: str | None, text: str, *, kind: MemoryKind = "heard", importance: float = 0.5
    ) -> str:
        memory = Memory(str(next(self._ids)), character, player, text, kind, importance, 0.0)
        self.memories.append(memory)
        return memory.id

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        self.recalls.append((character, player, query, k))
        mine = [m for m in self.memories if m.character == character and m.player in (player, None)]
        return [Recalled(m, 1.0, 1.0) for m in mine[:k]]

    async def list(self, character: str | None, player: str | None, *, limit: int = 100) -> list[Memory]:
        return self.memories[:limit]

    async def forget(self, player: str, character: str | None = None) -> int:
        return 0

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        pass


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
    texts = [(m.player, m.text) for m in memory.memories[2:]]
    assert texts == [("alice", "The player said: What is my dog called?"), ("alice", "Tess said: Rex is a fine name.")]


async def test_an_unreported_reply_counts_as_heard_in_full(character: Character) -> None:
    memory = FakeMemory()
    talk, _ = conversation(character, memory, "p", ["One."], ["Two."])
    [e async for e in talk.turn("a")]
    [e async for e in talk.turn("b")]
    await talk.heard()
    assert [m.text for m in memory.memories] == [
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
    assert len(memory.memories) == 4


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
