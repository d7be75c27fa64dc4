"""One reply's events: what the character recalls of the player, then what its model says, under a time limit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from dialogue.errors import DialogueError
from dialogue.manager import DialogueManager
from dialogue.types import ReplyDone, ReplyEvent, ReplySentence
from llmasos.services import ConversationOptions, Services
from llmasos.turn import Timeline
from memory.errors import MemoryRecallError

log = logging.getLogger(__name__)


async def reply_events(
    services: Services,
    manager: DialogueManager,
    options: ConversationOptions,
    player: str,
    text: str,
    timeline: Timeline,
    error: Callable[[str, str], None],
    *,
    world: str = "",
) -> AsyncIterator[ReplyEvent]:
    """The reply to ``text`` of ``player``: recall (best effort, within its budget), then the model's events,
    each awaited at most ``llm_timeout_s``; a model that is down or stalled ends the reply with the apology.
    ``world``: what the game says is so right now (the prompt's "Right now:")."""
    memories: list[str] = []
    try:
        recalled = await asyncio.wait_for(
            services.memory.recall(
                manager.character.id, player, text, k=options.recall_k, budget_s=options.recall_budget_s
            ),
            timeout=options.recall_budget_s * 4,
        )
        memories = [r.memory.text for r in recalled]
    except Exception as exc:  # recall is best effort: the reply goes on without memories, counted as degraded
        if isinstance(exc, MemoryRecallError):
            degraded = exc.reason
        else:  # a store that broke its contract: over four budgets, or an error it did not report as one
            degraded = "timeout" if isinstance(exc, TimeoutError) else "error"
        services.observer.error("memory_recall_timeout" if degraded == "timeout" else "memory_recall_error")
        log.warning("memory recall degraded", extra={"reason": degraded, "error": repr(exc)})
    timeline.mark("recall_done")
    replies = manager.reply(
        text, memories=memories, world=world, on_first_token=lambda: timeline.mark("llm_first_token")
    )
    said = 0  # chars of the reply text so far (where an apology would follow)
    try:
        while True:
            try:
                event = await asyncio.wait_for(anext(replies), options.llm_timeout_s)
            except StopAsyncIteration:
                return
            if isinstance(event, ReplySentence):
                said = event.start_char + len(event.text)
            yield event
    except (TimeoutError, DialogueError) as exc:
        # the model is down or stalled: say so, in the character's voice, and go on listening
        reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        log.warning("llm unavailable", extra={"reason": reason})
        error("llm_unavailable", f"the character's mind is unavailable: {reason}")
        # the reply ends with the apology, after whatever was said (a worker that died mid-reply)
        start = said + 1 if said else 0
        yield ReplySentence(text=options.apology, start_char=start)
        yield ReplyDone(full_text=options.apology)  # (the Turn keeps the whole text it spoke)
    finally:
        close = getattr(replies, "aclose", None)
        if close is not None:
            await close()
