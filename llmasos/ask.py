"""What a reply answers: someone's words (or something that happened in the world), as the character's model
reads them and as its memory keeps them."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Ask:
    """The words a reply answers: ``player``'s ``text``. ``name``: who they are, in a room, where the model reads
    each line with its speaker ("Ann: ..."); None in a 1:1 conversation."""

    player: str
    text: str
    name: str | None = None
    world: str = ""  # what the game says is so for this player right now (their `world` facts)
    event: bool = False  # not words: something that happened in the world (a world action that failed)

    @property
    def said(self) -> str:
        """The words as the character's model reads them."""
        return f"{self.name}: {self.text}" if self.name and not self.event else self.text

    def then(self, text: str) -> Ask:
        """These words, and ``text`` said after them (answered together, once)."""
        return replace(self, text=f"{self.text} {text}".strip())

    def memory_lines(self, character_name: str, heard: str) -> list[str]:
        """What this exchange leaves in memory: what was said (by name, in a room) or what happened, and what
        was heard of the answer."""
        said = f"What happened: {self.text}" if self.event else said_line(self.name or "The player", self.text)
        return [said, said_line(character_name, heard)] if heard.strip() else [said]


def said_line(speaker: str, text: str) -> str:
    """A line of memory: who said what ("Ann said: ...")."""
    return f"{speaker} said: {text.strip()}"
