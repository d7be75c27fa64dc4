"""The dialogue manager: one character talking with one player, on any LangChain chat model.

``reply()`` streams typed events: ReplySentence pieces for speech, ReplyAction for valid declared world
actions (at their char offset in the spoken text), then ReplyDone. Actions come from inline markup (taken
out of the text by the markup parser) or from native tool calls; both are validated against the character's
declarations, and anything invalid is dropped and logged with its reason.

History keeps what the player heard: after a reply, ``heard(chars)`` cuts the last reply to what was played.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk

from dialogue.actions import ActionRejected, check_call, tool_definitions
from dialogue.markup import ActionMarkupParser
from dialogue.prompt import PromptInput, build_messages, context_text
from dialogue.splitter import SentenceSplitter, SplitterOptions
from dialogue.types import Backend, Character, HistoryEntry, ReplyAction, ReplyDone, ReplyEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManagerOptions:
    history_turns: int = 6  # at most this many player/character exchanges in the prompt (trimmed to half at once)
    splitter: SplitterOptions = field(default_factory=SplitterOptions)


@dataclass
class _ToolCall:
    at_char: int
    name: str = ""
    args: str = ""


class DialogueManager:
    def __init__(self, backend: Backend, character: Character, options: ManagerOptions | None = None) -> None:
        self._backend = backend
        self._character = character
        self._options = options or ManagerOptions()
        self._history: list[HistoryEntry] = []
        self._exchanges = 0

    @property
    def character(self) -> Character:
        return self._character

    @property
    def history(self) -> tuple[HistoryEntry, ...]:
        return tuple(self._history)

    @property
    def exchanges(self) -> int:
        """How many replies have been recorded in the history so far (each ``reply()`` that ran records one)."""
        return self._exchanges

    @property
    def last_reply(self) -> str:
        """The last reply as it stands in the history (cut to what was heard once ``heard`` was called)."""
        if self._history and self._history[-1].role == "character":
            return self._history[-1].text
        return ""

    def messages(self, player_text: str, memories: Sequence[str] = (), world: str = "") -> list[BaseMessage]:
        """The prompt the next reply would get."""
        return build_messages(self._prompt(player_text, memories, world))

    def _prompt(self, player_text: str, memories: Sequence[str], world: str) -> PromptInput:
        return PromptInput(
            character=self._character,
            player_text=player_text,
            memories=tuple(memories),
            world=world,
            history=tuple(self._history),
            markup=not self._use_tools,
        )

    @property
    def _use_tools(self) -> bool:
        return self._backend.native_tools and bool(self._character.actions)

    async def reply(
        self,
        player_text: str,
        *,
        memories: Sequence[str] = (),
        world: str = "",
        on_first_token: Callable[[], None] | None = None,
    ) -> AsyncGenerator[ReplyEvent, None]:
        """Stream one reply. Cancelling (barge-in) keeps the spoken part so far in the history.

        ``on_first_token`` is called once, when the model's first text or tool-call piece arrives (for timing).
        """
        prompt = self._prompt(player_text, memories, world)
        messages = build_messages(prompt)
        context = context_text(prompt)
        model: Any = self._backend.model
        if self._use_tools:
            model = model.bind_tools(tool_definitions(self._character))
        parser = ActionMarkupParser(self._character, self._dropped)
        splitter = SentenceSplitter(self._options.splitter)
        spoken: list[str] = []
        calls: dict[int, _ToolCall] = {}
        tool_drops = 0
        finish = ""
        try:
            async with contextlib.aclosing(model.astream(messages)) as stream:
                async for chunk in stream:
                    if on_first_token is not None and (_text(chunk) or getattr(chunk, "tool_call_chunks", None)):
                        on_first_token()
                        on_first_token = None
                    finish = (getattr(chunk, "response_metadata", None) or {}).get("finish_reason") or finish
                    for event in self._pieces(parser.feed(_text(chunk)), spoken, splitter):
                        yield event
                    for tc in getattr(chunk, "tool_call_chunks", None) or ():
                        call = calls.setdefault(tc.get("index") or 0, _ToolCall(at_char=len("".join(spoken))))
                        call.name += tc.get("name") or ""
                        call.args += tc.get("args") or ""
            for event in self._pieces(parser.close(), spoken, splitter):
                yield event
            for sentence in splitter.close():
                if finish == "length" and not _complete(sentence.text) and sentence.start_char > 0:
                    # cut off by the token cap mid-sentence: leave the fragment unsaid
                    spoken[:] = ["".join(spoken)[: sentence.start_char]]
                    log.debug("unfinished last sentence dropped", extra={"character": self._character.id})
                    continue
                yield sentence
            for _, call in sorted(calls.items()):
                action = self._tool_action(call)
                if action is None:
                    tool_drops += 1
                else:
                    yield action
            yield ReplyDone(full_text="".join(spoken), dropped=parser.dropped + tool_drops)
        finally:
            self._record(player_text, "".join(spoken), context)

    async def warm(self) -> None:
        """Compute the next reply's prompt prefix now (the character and the history so far), so the reply only
        computes what the player says next. For engines that keep computed prompts (``prefix_cache``); best
        effort, and it gives way to any reply (a background call)."""
        if not self._backend.prefix_cache:
            return
        prefix = build_messages(self._prompt("", (), ""))[:-1]  # all but the next player message
        try:
            await self._backend.model.ainvoke(prefix, max_new_tokens=1, background=True)
        except Exception as exc:  # preempted by a reply, or the model is down: the reply computes it all
            log.debug("prompt warm-up skipped", extra={"reason": repr(exc)})

    def heard(self, chars: int) -> None:
        """The player heard only the first ``chars`` characters of the last reply: forget the rest."""
        if not self._history or self._history[-1].role != "character":
            return
        text = self._history[-1].text[: max(chars, 0)].rstrip()
        if text:
            self._history[-1] = HistoryEntry("character", text)
        else:
            self._history.pop()

    def retract(self, player_text: str) -> None:
        """The last reply (to ``player_text``) never reached the player, nor did they mean it as said: a reply
        prepared before they finished speaking, or superseded by what they said next. Take the exchange out."""
        h = self._history
        if len(h) >= 2 and h[-1].role == "character" and (h[-2].role, h[-2].text) == ("player", player_text):
            del h[-2:]
        elif h and (h[-1].role, h[-1].text) == ("player", player_text):
            h.pop()

    def _pieces(
        self, pieces: list[str | ReplyAction], spoken: list[str], splitter: SentenceSplitter
    ) -> list[ReplyEvent]:
        events: list[ReplyEvent] = []
        for piece in pieces:
            if isinstance(piece, ReplyAction):
                events.append(piece)
                continue
            spoken.append(piece)
            events.extend(splitter.feed(piece))
        return events

    def _tool_action(self, call: _ToolCall) -> ReplyAction | None:
        try:
            args = json.loads(call.args) if call.args.strip() else {}
        except json.JSONDecodeError:
            self._dropped(call.name, "tool call arguments are not valid JSON")
            return None
        if not isinstance(args, dict):
            self._dropped(call.name, "tool call arguments are not a JSON object")
            return None
        try:
            valid = check_call(self._character, call.name, args, from_text=False)
        except ActionRejected as exc:
            self._dropped(call.name, str(exc))
            return None
        return ReplyAction(name=call.name, args=valid, at_char=call.at_char)

    def _dropped(self, action: str, reason: str) -> None:
        log.warning(
            "world action dropped", extra={"character": self._character.id, "action_text": action, "reason": reason}
        )

    def _record(self, player_text: str, reply: str, context: str) -> None:
        self._exchanges += 1
        self._history.append(HistoryEntry("player", player_text, context))
        if reply.strip():
            self._history.append(HistoryEntry("character", reply.strip()))
        cap = self._options.history_turns
        if len(self._history) > cap * 2:
            # down to half the cap at once: the prompt's prefix (cached by local engines) changes every
            # cap/2 turns instead of every turn
            keep = (cap + 1) // 2 * 2
            del self._history[: len(self._history) - keep]


def _complete(sentence: str) -> bool:
    return sentence.rstrip("\"')]”’ ").endswith((".", "!", "?", "…"))


def _text(chunk: BaseMessageChunk | Any) -> str:
    text = getattr(chunk, "text", "")
    return text if isinstance(text, str) else ""
