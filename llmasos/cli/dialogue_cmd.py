"""`llmasos characters`: list the characters; `llmasos chat`: a text conversation with one of them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from dialogue import DialogueError
from llmasos.errors import ConfigError
from llmasos.ids import player_arg
from llmasos.settings import Settings
from memory import MemoryStoreError


def register(sub: Any) -> None:
    c: argparse.ArgumentParser = sub.add_parser("characters", help="list the characters, one per line, id first")
    c.set_defaults(handler=run_characters)
    chat: argparse.ArgumentParser = sub.add_parser(
        "chat", help="a text conversation with a character: a line in, a reply line out (works with piped input)"
    )
    chat.add_argument("--character", required=True, help="the character's id (see `llmasos characters`)")
    chat.add_argument("--player", required=True, type=player_arg, help="who is talking: memories are kept per player")
    chat.add_argument("--world", default="", help="what is happening in the world right now")
    chat.add_argument(
        "--show-prompt", action="store_true", help="print each reply's prompt (with recalled memories) to stderr"
    )
    chat.set_defaults(handler=run_chat, one_shot=True)


def run_characters(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.content import scan_characters

    found, errors = scan_characters(settings)
    for character in found.values():
        actions = ", ".join(a.name for a in character.actions) or "-"
        print(f"{character.id}\t{character.name}\tactions: {actions}")
    for error in errors:
        print(f"llmasos: error: {error}", file=sys.stderr)
    return 1 if errors else 0


def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_chat(args, settings))
    except (DialogueError, MemoryStoreError) as exc:
        print(f"llmasos: error: {exc}", file=sys.stderr)
        return 2


async def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from llmasos.chat import ChatOptions, ChatSession, run_text_chat, stdin_reader
    from llmasos.content import scan_characters
    from llmasos.dialogue_factory import build_backend, build_manager
    from llmasos.ids import unknown_characters
    from llmasos.memory_factory import open_memory

    found, _ = scan_characters(settings)  # the generated characters too, with the quests they give
    unknown = unknown_characters([args.character], found)
    if unknown:
        raise ConfigError(unknown)
    character = found[args.character]
    # Load the model and open the memory store side by side; close the store if the model fails.
    backend_result, memory_result = await asyncio.gather(
        asyncio.to_thread(build_backend, settings), asyncio.to_thread(open_memory, settings), return_exceptions=True
    )
    if isinstance(memory_result, BaseException):
        raise memory_result
    memory = memory_result
    if isinstance(backend_result, BaseException):
        await memory.close()
        raise backend_result
    backend = backend_result
    try:
        options = ChatOptions(
            top_k=settings.memory.top_k,
            recall_budget_s=settings.memory.recall_budget_ms / 1000.0,
            world=args.world,
        )
        conversation = ChatSession(build_manager(settings, backend, character), memory, args.player, options)
        await conversation.warm_up()
        if sys.stdin.isatty() and character.greeting:
            print(f"{character.name}: {character.greeting}", flush=True)
        await run_text_chat(conversation, stdin_reader(sys.stdin), sys.stdout, sys.stderr if args.show_prompt else None)
    finally:
        await memory.close()
        if backend.engine is not None:  # the LLM worker process ends with the chat, not after it
            await asyncio.to_thread(backend.engine.close)
    return 0
