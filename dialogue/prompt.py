"""The prompt of one reply: persona, world context, recalled memories, recent history and the player's words.

Laid out for prompt caching: the system message is the character alone (the same for every turn), then the
history (append-only between turns), and what changes from turn to turn (the world right now, the memories
recalled for these words) comes last, in the player's message. A local engine then only computes the new
tail of the prompt each turn (llama.cpp reuses the cached prefix).
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


def player_text(p: PromptInput) -> str:
    """The last message: this turn's context (world, memories), then what the player said."""
    parts = []
    if p.world:
        parts.append(f"Right now: {p.world}")
    if p.memories:
        parts.append(MEMORY_HEADER + "\n" + "\n".join(f"- {m}" for m in p.memories))
    parts.append(p.player_text)
    return "\n\n".join(parts)


def build_messages(p: PromptInput) -> list[BaseMessage]:
    messages: list[BaseMessage] = [SystemMessage(system_text(p))]
    for entry in p.history:
        messages.append(HumanMessage(entry.text) if entry.role == "player" else AIMessage(entry.text))
    messages.append(HumanMessage(player_text(p)))
    return messages
