"""The prompt of one reply: persona, world context, recalled memories, recent history and the player's words.

Laid out for prompt caching with a tail of constant size: the system message is the character alone (the same
for every turn), then the history (the words said and heard, append-only between turns), then this turn's
context (the world right now, the memories recalled for these words) with the player's words. The context is
this turn's only: the history keeps the words, not the memories recalled for them, so the prompt grows by an
exchange a turn, not by an exchange and its memories. A local engine computes the history's new exchange while
the player is quiet (``DialogueManager.warm``), and a turn computes only its context and the player's words:
the same amount on the tenth turn as on the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from dialogue.actions import markup_help
from dialogue.types import Character, HistoryEntry

MEMORY_HEADER = "You remember about this player:"
WORLD_HEADER = "Right now:"
SCENE_HEADER = "Scene:"
KNOWLEDGE_HEADER = "You know:"


@dataclass(frozen=True)
class PromptInput:
    character: Character
    player_text: str
    memories: Sequence[str] = ()
    world: str = ""
    history: Sequence[HistoryEntry] = ()
    markup: bool = True  # describe inline action markup (models without native tool calling)
    nudge: bool = False  # ask again, plainly, for words to say (the first reply had nothing to say aloud)


def system_text(p: PromptInput) -> str:
    c = p.character
    parts = [c.persona]
    if c.scenario:
        parts.append(f"{SCENE_HEADER} {c.scenario}")
    if c.knowledge:
        parts.append(KNOWLEDGE_HEADER + "\n" + "\n".join(f"- {k}" for k in c.knowledge))
    parts.append(f"{_answer_as(c)} in one to three short spoken sentences. Plain words only: your reply is read aloud.")
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
        parts.append(f"{WORLD_HEADER} {p.world}")
    if p.memories:
        parts.append(MEMORY_HEADER + "\n" + "\n".join(f"- {m}" for m in p.memories))
    return "\n\n".join(parts)


def with_context(context: str, text: str) -> str:
    """A player message as the model reads it: its context first, then what the player said."""
    return f"{context}\n\n{text}" if context else text


def build_messages(p: PromptInput) -> list[BaseMessage]:
    """System, then the history, then this turn. Lines overheard in a room come as the human side's words,
    joined with the player's next ones into one message: the roles alternate, which strict chat templates need."""
    messages: list[BaseMessage] = [SystemMessage(system_text(p))]
    for entry in p.history:
        if entry.role == "character":
            messages.append(AIMessage(entry.text))
        else:
            _human(messages, entry.text, "\n" if entry.role == "room" else "\n\n")
    text = with_context(context_text(p), p.player_text)
    if p.nudge:
        text += "\n\n" + nudge_text(p.character)
    _human(messages, text, "\n\n")
    return messages


def _human(messages: list[BaseMessage], text: str, after: str) -> None:
    """``text`` on the human side: a message of its own, or after the human message before it (``after``: one
    line overheard after another, a paragraph before the words answered)."""
    last = messages[-1]
    if isinstance(last, HumanMessage) and isinstance(last.content, str):
        messages[-1] = HumanMessage(f"{last.content}{after}{text}" if text else last.content)
    else:
        messages.append(HumanMessage(text))


def nudge_text(c: Character) -> str:
    return f"({_answer_as(c)}, to what the player just said, in one short sentence of your own words.)"


def scaffolding(c: Character) -> tuple[str, ...]:
    """How the prompt's own lines begin: a reply line that starts with one of these reads the prompt back (the
    packaged model does) instead of answering. Case does not matter. Transcript lines, "The player said: ..."
    as recalled memories have them, are told by their speakers (``player_names``, ``own_names``)."""
    return (
        MEMORY_HEADER,
        WORLD_HEADER,
        SCENE_HEADER,
        KNOWLEDGE_HEADER,
        _answer_as(c),
        "(" + _answer_as(c),
        "You can act by",
        f"You are {c.name}",
    )


# who the player is in a transcript line ("The player said: ..." in a recalled memory, "User: ..." in a chat log)
PLAYER_NAMES = ("The player", "Player", "User")


def own_names(c: Character) -> tuple[str, ...]:
    """The character in a transcript line ("Brom Ironhand said: ..." in a recalled memory, "Brom: ...")."""
    return tuple(dict.fromkeys((c.name, c.name.split()[0], "Assistant")))


def _answer_as(c: Character) -> str:
    return f"Answer as {c.name}"
