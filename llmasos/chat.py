"""A conversation with memory: recall before each reply, remember what the player heard after it.

``ChatSession`` is what a text session drives: ``turn(text)`` streams the reply events; ``heard``
reports how much of the reply was played, which cuts the dialogue history and is what gets remembered.
``run_text_chat`` is the text loop behind `llmasos chat`: a line in, a reply line out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

from langchain_core.messages import BaseMessage

from dialogue import BackendError, Character, DialogueManager, ReplyAction, ReplyEvent, ReplySentence
from llmasos.ask import Ask
from memory import MemoryRecallError, MemoryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatOptions:
    top_k: int = 4  # memories recalled into the prompt
    recall_budget_s: float = 0.15
    world: str = ""  # what is happening in the world right now


class ChatSession:
    """One character and one player."""

    def __init__(self, manager: DialogueManager, memory: MemoryStore, player: str, options: ChatOptions) -> None:
        self._manager = manager
        self._memory = memory
        self._player = player
        self._options = options
        self._pending: tuple[str, str] | None = None  # (what the player said, the reply) not yet remembered
        self.last_prompt: list[BaseMessage] = []

    @property
    def character(self) -> Character:
        return self._manager.character

    @property
    def character_id(self) -> str:
        return self._manager.character.id

    async def warm_up(self, budget_s: float = 30.0) -> None:
        """One recall with a generous budget, so the first real turn does not pay for cold caches."""
        if self._options.top_k > 0:
            try:
                await self._memory.recall(self.character_id, self._player, "hello", k=1, budget_s=budget_s)
            except MemoryRecallError as exc:  # the first turn will try again
                log.warning("memory warm-up failed", extra={"reason": exc.reason})

    async def turn(self, text: str) -> AsyncGenerator[ReplyEvent, None]:
        """Recall, then stream the reply. Call ``heard`` afterwards (also after a cancelled turn)."""
        if self._pending is not None:
            await self.heard()  # the previous reply was not reported: it was heard in full
        memories: list[str] = []
        if self._options.top_k > 0:
            try:
                recalled = await self._memory.recall(
                    self.character_id, self._player, text, k=self._options.top_k, budget_s=self._options.recall_budget_s
                )
                memories = [r.memory.text for r in recalled]
            except MemoryRecallError as exc:  # degraded: this reply goes on without memories
                log.warning("memory recall degraded", extra={"reason": exc.reason, "error": str(exc)})
        self.last_prompt = self._manager.messages(text, memories, self._options.world)
        log.debug("reply prompt", extra={"memories": memories, "character": self.character_id})
        try:
            async for event in self._manager.reply(text, memories=memories, world=self._options.world):
                yield event
        finally:
            self._pending = (text, self._manager.last_reply)

    async def heard(self, chars: int | None = None) -> None:
        """The player heard the first ``chars`` characters of the last reply (None: all of it)."""
        if self._pending is None:
            return
        said, reply = self._pending
        self._pending = None
        if chars is not None:
            self._manager.heard(chars)
            reply = self._manager.last_reply
        for line in Ask(self._player, said).memory_lines(self._manager.character.name, reply):
            await self._memory.remember(self.character_id, self._player, line, kind="heard")


ReadLine = Callable[[], Awaitable[str]]


def render(event: ReplyEvent) -> str:
    """How `llmasos chat` prints an event (sentences as text, actions as ``[name key=value]``)."""
    if isinstance(event, ReplySentence):
        return event.text + " "
    if isinstance(event, ReplyAction):
        args = "".join(f" {k}={v}" for k, v in event.args.items())
        return f"[{event.name}{args}] "
    return ""


async def run_text_chat(
    conversation: ChatSession, read_line: ReadLine, out: TextIO, prompt_out: TextIO | None = None
) -> int:
    """Answer each line until end of input: one reply per line, printed as it streams. Returns the turn count."""
    name = conversation.character.name
    turns = 0
    while True:
        line = await read_line()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        out.write(f"{name}: ")
        out.flush()
        try:
            await _print_reply(conversation, text, out, prompt_out)
        except BackendError as exc:
            # one failed reply (an endpoint down, ...) does not end the conversation
            log.error("reply failed", extra={"error": str(exc), "retryable": exc.retryable})
            out.write(f"(no reply: {exc})")
        out.write("\n")
        out.flush()
        await conversation.heard()
        turns += 1
    return turns


async def _print_reply(conversation: ChatSession, text: str, out: TextIO, prompt_out: TextIO | None) -> None:
    first = True
    held: list[ReplyAction] = []  # actions are printed once the text has reached their place
    async for event in conversation.turn(text):
        if first and prompt_out is not None:
            write_prompt(conversation.last_prompt, prompt_out)
        first = False
        if isinstance(event, ReplyAction):
            held.append(event)
            continue
        out.write(render(event))
        reached = event.start_char + len(event.text) if isinstance(event, ReplySentence) else None
        for action in [a for a in held if reached is None or a.at_char <= reached]:
            held.remove(action)
            out.write(render(action))
        out.flush()


def write_prompt(messages: list[BaseMessage], out: TextIO) -> None:
    for message in messages:
        out.write(f"--- {message.type}\n{message.text}\n")
    out.write("--- end of prompt\n")
    out.flush()


def stdin_reader(stream: TextIO) -> ReadLine:
    async def read_line() -> str:
        return await asyncio.to_thread(stream.readline)

    return read_line
