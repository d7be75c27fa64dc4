"""`llmasos memory list|search|add|forget`: look into a character's memories, or forget a player."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, get_args

from llmasos.content import scan_characters
from llmasos.errors import ConfigError
from llmasos.ids import character_arg, player_arg, unknown_characters
from llmasos.settings import Settings
from memory import ChromaMemoryStore, Embedder, Memory, MemoryKind, MemoryStoreError

_HEADER = f"{'CREATED':<19}  {'CHARACTER':<12} {'PLAYER':<12} {'KIND':<10} {'IMP':<4}  TEXT"
_SEARCH_BUDGET_S = 60.0  # a person is waiting at a terminal, not a conversation: no tight budget


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("memory", help="list, search, add or forget memories")
    msub = p.add_subparsers(dest="memory_command", metavar="ACTION", required=True)

    ls = msub.add_parser("list", help="the newest memories (a player's own plus the world facts)")
    ls.add_argument(
        "--character", default=None, type=character_arg, help="only this character's (default: every character)"
    )
    ls.add_argument(
        "--player", default=None, type=player_arg, help="what this player can be told (default: every player)"
    )
    ls.add_argument("--limit", type=int, default=100)
    ls.set_defaults(handler=run_list, one_shot=True)

    se = msub.add_parser("search", help="recall as in a conversation: the best memories for a query, with scores")
    se.add_argument("query")
    se.add_argument("--character", required=True, type=character_arg)
    se.add_argument("--player", required=True, type=player_arg)
    se.add_argument("-k", type=int, default=None, help="how many (default: memory.top_k)")
    se.set_defaults(handler=run_search, one_shot=True)

    add = msub.add_parser("add", help="store a memory (without --player: a world fact every player may hear)")
    add.add_argument("text")
    add.add_argument("--character", required=True, type=character_arg)
    add.add_argument("--player", default=None, type=player_arg)
    add.add_argument("--kind", choices=get_args(MemoryKind), default=None, help="default: fact, or world")
    add.add_argument("--importance", type=float, default=0.5)
    add.set_defaults(handler=run_add, one_shot=True)

    fo = msub.add_parser("forget", help="delete every memory of a player")
    fo.add_argument("--player", required=True, type=player_arg)
    fo.add_argument(
        "--character", default=None, type=character_arg, help="only this character's (default: every character)"
    )
    fo.set_defaults(handler=run_forget, one_shot=True)


class _LazyEmbedder:
    """Loads the model at the first embedding: `list` and `forget` never need it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._embedder: Embedder | None = None

    def _get(self) -> Embedder:
        if self._embedder is None:
            from llmasos.memory_factory import load_embedder

            self._embedder = load_embedder(self._settings)
        return self._embedder

    @property
    def dimension(self) -> int:
        return self._get().dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._get().embed(texts)


def _with_store(settings: Settings, body: Callable[[ChromaMemoryStore], Awaitable[int]]) -> int:
    from llmasos.memory_factory import open_memory

    async def main() -> int:
        store = await asyncio.to_thread(open_memory, settings, _LazyEmbedder(settings))
        try:
            return await body(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except MemoryStoreError as exc:
        print(f"llmasos: error: {exc}", file=sys.stderr)
        return 2


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _line(m: Memory) -> str:
    who = m.player if m.player is not None else "(world)"
    return f"{_when(m.created_at)}  {m.character:<12} {who:<12} {m.kind:<10} {m.importance:.2f}  {m.text}"


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    async def body(store: ChromaMemoryStore) -> int:
        memories = await store.list(args.character, args.player, limit=args.limit)
        print(_HEADER)
        for m in memories:
            print(_line(m))
        print(f"{len(memories)} memories")
        return 0

    return _with_store(settings, body)


def run_search(args: argparse.Namespace, settings: Settings) -> int:
    k = args.k if args.k is not None else settings.memory.top_k

    async def body(store: ChromaMemoryStore) -> int:
        found = await store.recall(args.character, args.player, args.query, k=k, budget_s=_SEARCH_BUDGET_S)
        print(
            f"{'SCORE':<6} {'SIM':<6} {'CREATED':<19}  {'CHARACTER':<12} {'PLAYER':<12} {'KIND':<10} {'IMP':<4}  TEXT"
        )
        for r in found:
            print(f"{r.score:.3f}  {r.similarity:.3f}  {_line(r.memory)}")
        print(f"{len(found)} memories")
        return 0

    return _with_store(settings, body)


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    kind: MemoryKind = args.kind or ("world" if args.player is None else "fact")
    known, _ = scan_characters(settings)
    unknown = unknown_characters([args.character], known)  # a memory nobody could ever recall
    if unknown:
        raise ConfigError(unknown)

    async def body(store: ChromaMemoryStore) -> int:
        memory_id = await store.remember(args.character, args.player, args.text, kind=kind, importance=args.importance)
        await store.flush()
        if store.failed_writes:
            print("llmasos: error: the memory could not be stored (see the log)", file=sys.stderr)
            return 1
        print(f"stored {memory_id}")
        return 0

    return _with_store(settings, body)


def run_forget(args: argparse.Namespace, settings: Settings) -> int:
    async def body(store: ChromaMemoryStore) -> int:
        deleted = await store.forget(args.player, args.character)
        print(f"deleted {deleted} memories")
        return 0

    return _with_store(settings, body)
