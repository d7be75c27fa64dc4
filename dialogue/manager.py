"""The dialogue manager: one character talking with one player, on any LangChain chat model.

``reply()`` streams typed events: ReplySentence pieces for speech, ReplyAction for valid declared world
actions (at their char offset in the spoken text), then ReplyDone. Actions come from the action chooser
(``dialogue.choice``: what the player's words ask for, decided beside the reply and placed where the reply
stands when it is known, its start for the cue chooser), from inline markup (taken out of the text by the
markup parser) or from native tool calls; all are validated against the character's declarations, anything
invalid is dropped and logged with its reason, and an action the chooser already chose is not done twice.

History keeps what the player heard: after a reply, ``heard(chars)`` cuts the last reply to what was played.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.messages import BaseMessage, BaseMessageChunk

from dialogue.actions import ActionRejected, check_call, tool_definitions
from dialogue.choice import ActionCall, ActionChooser
from dialogue.markup import ActionMarkupParser
from dialogue.prompt import PLAYER_NAMES, PromptInput, build_messages, own_names, scaffolding
from dialogue.scaffold import ScaffoldFilter
from dialogue.splitter import SentenceSplitter, SplitterOptions
from dialogue.types import (
    Backend,
    Character,
    HistoryEntry,
    Recovery,
    ReplyAction,
    ReplyDone,
    ReplyEvent,
    ReplySentence,
)

log = logging.getLogger(__name__)

MIN_QUOTED = 8  # a history line this long or longer, quoted by a recalled memory, makes the memory a repeat


@dataclass(frozen=True)
class ManagerOptions:
    history_turns: int = 6  # at most this many player/character exchanges in the prompt (trimmed to half at once)
    # said when the model has nothing to say twice, unless the character has a fallback line of its own
    fallback: str = "Hmm. I'm not sure what to say to that."
    splitter: SplitterOptions = field(default_factory=SplitterOptions)


@dataclass
class _Reply:
    """One reply as it streams, over the model calls it takes."""

    on_first_token: Callable[[], None] | None
    spoken: list[str] = field(default_factory=list)  # the spoken text (markup and scaffolding out)
    said: bool = False  # a piece was given for speech
    said_until: int = 0  # where the last piece given for speech ends in the spoken text
    dropped: int = 0
    echoes: int = 0
    choice: asyncio.Task[tuple[ActionCall, ...]] | None = None  # the chooser's, until its actions are given
    chosen: set[str] = field(default_factory=set)  # actions given by the chooser (the model's are not repeated)


@dataclass
class _ToolCall:
    at_char: int
    name: str = ""
    args: str = ""


class DialogueManager:
    def __init__(
        self,
        backend: Backend,
        character: Character,
        options: ManagerOptions | None = None,
        chooser: ActionChooser | None = None,
    ) -> None:
        self._backend = backend
        self._character = character
        self._options = options or ManagerOptions()
        self._chooser = chooser  # None: only the actions the model writes or calls
        self._history: list[HistoryEntry] = []
        self._exchanges = 0
        self._last_done: ReplyDone | None = None
        self._others: tuple[str, ...] = ()  # who else is in the room (``hear_others``)
        # an engine that keeps computed prompts keeps this conversation's where its next request finds it
        self._engine_kwargs: dict[str, Any] = (
            {"affinity": f"{character.id}/{uuid.uuid4().hex[:12]}"} if backend.prefix_cache else {}
        )

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
    def last_done(self) -> ReplyDone | None:
        """How the last reply ended (None while one streams, or when it was cancelled or failed)."""
        return self._last_done

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
        self._trim()
        return PromptInput(
            character=self._character,
            player_text=player_text,
            memories=self._fresh(memories),
            world=world,
            history=tuple(self._history),
            markup=not self._use_tools,
        )

    def _fresh(self, memories: Sequence[str]) -> tuple[str, ...]:
        """The recalled memories the prompt does not already hold: a memory that quotes a line of the history in
        the prompt ("Brom said: <what the history says Brom said>") is left out. Recall ranks this session's own
        lines high (recent, similar), and on a small model each costs its tokens at every turn (measured: three
        of four recalled memories repeated the history, ~110 of a turn's ~150 new prompt tokens)."""
        lines = [text for entry in self._history if len(text := entry.text.strip()) >= MIN_QUOTED]
        return tuple(m for m in memories if not any(line in m for line in lines))

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

        The player always hears something: when the model's reply has nothing to say aloud (nothing at all, only
        markup, or only its prompt read back), the model is asked once more with a nudge, and when that has
        nothing either, the character's fallback line is said. ``ReplyDone.recovery`` tells which.

        ``on_first_token`` is called once, when the model's first text or tool-call piece arrives (for timing).
        """
        self._last_done = None
        prompt = self._prompt(player_text, memories, world)
        reply = _Reply(on_first_token)
        if self._chooser is not None and self._character.actions and player_text.strip():
            reply.choice = asyncio.create_task(self._chooser.choose(self._character, player_text))
            await asyncio.sleep(0)  # a chooser that needs no model has chosen before the first word
        recovery: Recovery = ""
        try:
            for chosen in self._chosen(reply):
                yield chosen
            async for event in self._attempt(build_messages(prompt), reply):
                yield event
            if not reply.said and player_text.strip():
                log.warning("the reply had nothing to say aloud: asking again", extra={"character": self._character.id})
                reply.spoken.clear()
                recovery = "retried"
                async for event in self._attempt(build_messages(replace(prompt, nudge=True)), reply):
                    yield event
            if not reply.said and player_text.strip():
                log.warning(
                    "the reply had nothing to say aloud again: fallback line", extra={"character": self._character.id}
                )
                line = self._character.fallback or self._options.fallback
                reply.spoken[:] = [line]
                recovery = "fallback"
                yield ReplySentence(text=line, start_char=0)
            if reply.choice is not None:
                await asyncio.wait([reply.choice])
                for chosen in self._chosen(reply):
                    yield chosen
            done = ReplyDone(
                full_text="".join(reply.spoken), dropped=reply.dropped, recovery=recovery, echoes=reply.echoes
            )
            self._last_done = done
            yield done
        finally:
            if reply.choice is not None and not reply.choice.done():
                reply.choice.cancel()
            self._record(player_text, "".join(reply.spoken))

    def _chosen(self, reply: _Reply) -> list[ReplyAction]:
        """The chooser's actions once it has chosen, placed where the spoken reply stands (once)."""
        task = reply.choice
        if task is None or not task.done():
            return []
        reply.choice = None
        if task.cancelled():
            return []
        if (exc := task.exception()) is not None:  # a model that failed to choose: the reply goes on without
            log.warning("action choice failed", extra={"character": self._character.id, "error": repr(exc)})
            return []
        at = len("".join(reply.spoken))
        reply.chosen.update(c.name for c in task.result())
        return [ReplyAction(name=c.name, args=c.args, at_char=at) for c in task.result()]

    async def _attempt(self, messages: list[BaseMessage], reply: _Reply) -> AsyncGenerator[ReplyEvent, None]:
        """One call of the model, streamed into ``reply``: markup out, scaffolding out, split for speech."""
        model: Any = self._backend.model
        if self._use_tools:
            model = model.bind_tools(tool_definitions(self._character))
        parser = ActionMarkupParser(self._character, self._dropped)
        echoes = ScaffoldFilter(scaffolding(self._character), PLAYER_NAMES + self._others, own_names(self._character))
        splitter = SentenceSplitter(self._options.splitter)
        spoken = reply.spoken
        calls: dict[int, _ToolCall] = {}
        tool_drops = 0
        finish = ""
        try:
            async with contextlib.aclosing(model.astream(messages, **self._engine_kwargs)) as stream:
                async for chunk in stream:
                    if reply.on_first_token is not None and (_text(chunk) or getattr(chunk, "tool_call_chunks", None)):
                        reply.on_first_token()
                        reply.on_first_token = None
                    finish = (getattr(chunk, "response_metadata", None) or {}).get("finish_reason") or finish
                    for event in self._pieces(echoes.feed(parser.feed(_text(chunk))), reply, splitter):
                        yield event
                    for tc in getattr(chunk, "tool_call_chunks", None) or ():
                        call = calls.setdefault(tc.get("index") or 0, _ToolCall(at_char=len("".join(spoken))))
                        call.name += tc.get("name") or ""
                        call.args += tc.get("args") or ""
            for event in self._pieces(echoes.feed(parser.close()) + echoes.close(), reply, splitter):
                yield event
            for sentence in splitter.close(capped=finish == "length"):
                yield self._said(sentence, reply)
            if finish == "length" and len("".join(spoken)) > reply.said_until:
                # cut off by the token cap mid-sentence: the fragment stays unsaid
                spoken[:] = ["".join(spoken)[: reply.said_until]]
                log.debug("unfinished end of a capped reply left unsaid", extra={"character": self._character.id})
            for _, call in sorted(calls.items()):
                action = self._tool_action(call)
                if action is None:
                    tool_drops += 1
                elif action.name not in reply.chosen:
                    yield action
        finally:
            reply.dropped += parser.dropped + tool_drops + echoes.dropped_actions
            reply.echoes += len(echoes.removed)
            if echoes.removed:
                log.warning(
                    "prompt scaffolding left out of a reply",
                    extra={"character": self._character.id, "pieces": len(echoes.removed)},
                )
                log.debug("scaffolding left out", extra={"removed": echoes.removed})  # may quote memories

    async def warm(self) -> None:
        """Compute the next reply's prompt prefix now (the character and the history so far), so the reply only
        computes what the player says next. For engines that keep computed prompts (``prefix_cache``); best
        effort, and it gives way to any reply (a background call)."""
        if not self._backend.prefix_cache:
            return
        prefix = build_messages(self._prompt("", (), ""))[:-1]  # all but the next player message
        try:
            await self._backend.model.ainvoke(prefix, max_new_tokens=1, background=True, **self._engine_kwargs)
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

    def overheard(self, speaker: str, text: str) -> None:
        """In a room: ``speaker`` said ``text`` to someone else, or another character said it (heard); or, with
        no speaker, something the character now knows happened. It goes into the history, so the next reply
        knows what was said and done around the character."""
        if text.strip():
            self._history.append(HistoryEntry("room", f"{speaker}: {text.strip()}" if speaker else text.strip()))

    def hear_others(self, names: Sequence[str]) -> None:
        """The names of the others in a room (people and characters): a reply line that begins as one of their
        transcript lines ("Ann: ...", "Hilda said: ...") reads the history back, and is left unsaid."""
        self._others = tuple(dict.fromkeys(n for n in names if n))

    def retract(self, player_text: str) -> None:
        """The last reply (to ``player_text``) never reached the player, nor did they mean it as said: a reply
        prepared before they finished speaking, or superseded by what they said next. Take the exchange out."""
        h = self._history
        if len(h) >= 2 and h[-1].role == "character" and (h[-2].role, h[-2].text) == ("player", player_text):
            del h[-2:]
        elif h and (h[-1].role, h[-1].text) == ("player", player_text):
            h.pop()

    def _pieces(self, pieces: list[str | ReplyAction], reply: _Reply, splitter: SentenceSplitter) -> list[ReplyEvent]:
        events: list[ReplyEvent] = list(self._chosen(reply))
        for piece in pieces:
            if isinstance(piece, ReplyAction):
                if piece.name not in reply.chosen:
                    events.append(piece)
                continue
            reply.spoken.append(piece)
            events.extend(self._said(s, reply) for s in splitter.feed(piece))
        return events

    @staticmethod
    def _said(sentence: ReplySentence, reply: _Reply) -> ReplySentence:
        reply.said = True
        reply.said_until = sentence.start_char + len(sentence.text)
        return sentence

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

    def _record(self, player_text: str, reply: str) -> None:
        self._exchanges += 1
        self._history.append(HistoryEntry("player", player_text))
        if reply.strip():
            self._history.append(HistoryEntry("character", reply.strip()))

    def _trim(self) -> None:
        """At most ``history_turns`` exchanges' worth of entries (lines overheard count as entries), down to
        half the cap at once: the prompt's prefix (cached by local engines) changes every cap/2 turns instead
        of every turn. The history never starts with the character's words. Done when a prompt is made, not
        when an exchange is recorded: a reply taken back (``retract``: prepared in a pause the player then
        spoke on through) must not slide the window, or the next prompt loses the cached prefix."""
        cap = self._options.history_turns
        h = self._history
        if len(h) > cap * 2:
            start = len(h) - (cap + 1) // 2 * 2
            while start < len(h) and h[start].role == "character":
                start += 1
            del h[:start]


def _text(chunk: BaseMessageChunk | Any) -> str:
    text = getattr(chunk, "text", "")
    return text if isinstance(text, str) else ""
