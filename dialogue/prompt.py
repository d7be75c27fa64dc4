"""The prompt of one reply: persona, world context, recalled memories, recent history and the player's words.

Laid out for prompt caching: the system message is the character alone (the same for every turn), then the
history (append-only between turns), and what changes from turn to turn (the world right now, the memories
recalled for these words) comes with the player's message, and stays with it in the history. Each turn's
prompt then extends the last one, and a local engine only computes the new tail (llama.cpp reuses the cached
prefix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from dialogue.actions import markup_help
from dialogue.types import Character, HistoryEntry

MEMORY_HEADER = "You remember about this player:"


@dataclass(frozen=True)
class PromptInput:
    character: Character
    player_text: str
    memories: Sequence[str] = ()
    world: str = ""
    history: Sequence[HistoryEntry] = ()
    markup: bool = True  # describe inline action markup (models without native tool calling)


def system_text(p: PromptInput) -> str:
    c = p.character
    parts = [c.persona]
    if c.scenario:
        parts.append(f"Scene: {c.scenario}")
    if c.knowledge:
        parts.append("You know:\n" + "\n".join(f"- {k}" for k in c.knowledge))
    parts.append(
        f"Answer as {c.name} in one to three short spoken sentences. Plain words only: your reply is read aloud."
    )
    if c.actions:
        if p.markup:
            parts.append(
                "You can act by writing an action in square brackets where it happens in your reply, "
                "for example [nod]. Only these actions exist:\n" + markup_help(c)
            )
        else:
            parts.append("You can act by calling the tools you are given while you speak.")
    return "\n\n".join(parts)


def context_text(p: PromptInput) -> str:
    """This turn's context for the model: the world right now and the memories recalled for these words."""
    parts = []
    if p.world:
        parts.append(f"Right now: {p.world}")
    if p.memories:
        parts.append(MEMORY_HEADER + "\n" + "\n".join(f"- {m}" for m in p.memories))
    return "\n\n".join(parts)


def with_context(context: str, text: str) -> str:
    """A player message as the model reads it: its context first, then what the player said."""
    return f"{context}\n\n{text}" if context else text


def build_messages(p: PromptInput) -> list[BaseMessage]:
    messages: list[BaseMessage] = [SystemMessage(system_text(p))]
    for entry in p.history:
        if entry.role == "player":
            messages.append(HumanMessage(with_context(entry.context, entry.text)))
        else:
            messages.append(AIMessage(entry.text))
    messages.append(HumanMessage(with_context(context_text(p), p.player_text)))
    return messages
