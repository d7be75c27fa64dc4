"""ChromaMemoryStore: the MemoryStore on ChromaDB (embedded PersistentClient or a `chroma run` server).

Memories live in one collection per player and world facts in one per character (see memory/collections.py
for why); each record's metadata carries ``character``, ``player`` (``""`` for a world fact), ``kind``,
``importance`` and ``created_at``. A recall reads the player's collection (filtered on the character) and the
character's world facts: another player's memories never leave the database for this conversation.

Threads: writes go through one background writer (batched embedding + upsert, in issue order; a failed batch
is retried with backoff, see memory/writer.py); reads (recall, list) run on a small reader pool. Vectors always
come from the injected Embedder: Chroma's own embedding function (which downloads a model) is never used.

Nothing written is lost while the process lives: writes wait in order for an unreachable database. At close,
what still cannot be stored goes to the journal (``ChromaStoreOptions.journal``, see memory/journal.py); the
next store opened with that journal applies it before it serves. ``forget`` deletes everywhere: the database,
the writes still queued and the journal. A read never waits for the database beyond its budget: a recall that
runs out of time or fails raises ``MemoryRecallError`` (reason "timeout" or "error") for the caller to count.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from memory.chroma_client import close_client
from memory.collections import CollectionSet, Scope
from memory.errors import (
    MemoryBackendError,
    MemoryClosedError,
    MemoryInputError,
    MemoryRecallError,
    MemoryStoreError,
)
from memory.journal import Forget, Journal, Record, apply, compact
from memory.ranking import RankOptions, rank, similarity_from_distance
from memory.types import Embedder, Memory, MemoryKind, MemoryStore, Recalled
from memory.writer import BatchWriter, RetryPolicy

log = logging.getLogger(__name__)

_WORLD = ""  # the player value of a shared world fact
_SCOPES: tuple[Scope, ...] = ("p", "w")
_KINDS = frozenset(get_args(MemoryKind))
_MAX_CHUNK = 4000  # records per Chroma call in bulk operations (below Chroma's max batch size)


@dataclass(frozen=True)
class ChromaStoreOptions:
    collection: str = "memories"  # prefix of the collections' names
    candidates: int = 20  # nearest memories taken from Chroma, then re-ranked
    write_batch: int = 64
    readers: int = 2  # recall/list threads
    rank: RankOptions = field(default_factory=RankOptions)
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # backoff between attempts at a failed write
    journal: Path | None = None  # where writes unstored at close go (and are replayed from); None: they are lost


class ChromaMemoryStore:
    """Implements memory.types.MemoryStore. Owns ``client`` and closes it on close()."""

    def __init__(
        self,
        client: Any,
        embedder: Embedder,
        options: ChromaStoreOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._options = options or ChromaStoreOptions()
        self._client = client
        self._embedder = embedder
        self._clock = clock
        self._collections = CollectionSet(client, self._options.collection)
        try:
            client.heartbeat()
        except Exception as exc:
            raise MemoryBackendError(f"the Chroma database does not answer: {exc}", retryable=True) from exc
        self._journal = Journal(self._options.journal) if self._options.journal is not None else None
        self._reader = ThreadPoolExecutor(max_workers=self._options.readers, thread_name_prefix="memory-reader")
        self._writer: BatchWriter[Memory] = BatchWriter(
            self._write_batch,
            max_batch=self._options.write_batch,
            retry=self._options.retry,
            spill=self._spill if self._journal is not None else None,
        )
        self._closed = False
        if self._journal is not None:
            try:
                self._replay(self._journal)
            except BaseException:
                self._writer.close()
                self._reader.shutdown(wait=True)
                raise

    # -- the MemoryStore protocol ------------------------------------------------------------------------

    async def remember(
        self, character: str, player: str | None, text: str, *, kind: MemoryKind = "heard", importance: float = 0.5
    ) -> str:
        memory = self._new_memory(character, player, text, kind, importance)
        self._writer.add(memory)
        return memory.id

    async def recall(self, character: str, player: str, query: str, *, k: int, budget_s: float) -> list[Recalled]:
        _check_id("character", character)
        _check_id("player", player)
        if k <= 0:
            return []
        self._check_open()
        deadline = time.monotonic() + budget_s
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._reader, self._recall_sync, character, player, query, k, deadline)
        try:
            return await asyncio.wait_for(future, timeout=max(0.0, budget_s))
        except TimeoutError as exc:
            raise MemoryRecallError(f"memory recall took longer than {budget_s} s", reason="timeout") from exc
        except Exception as exc:
            raise MemoryRecallError(f"memory recall failed: {exc}", reason="error") from exc

    async def warm(self, character: str, player: str) -> None:
        """Load this conversation's collections ahead of its first recall (a cold one costs ~150 ms)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._reader, self._warm_sync, character, player)
        except Exception as exc:
            raise MemoryBackendError(f"cannot load the memories of this conversation: {exc}", retryable=True) from exc

    async def list(self, character: str | None, player: str | None, *, limit: int = 100) -> builtins.list[Memory]:
        if character is not None:
            _check_id("character", character)
        if player is not None:
            _check_id("player", player)
        self._check_open()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, self._list_sync, character, player, limit)
        except MemoryStoreError:
            raise
        except Exception as exc:
            raise MemoryBackendError(f"cannot list memories: {exc}", retryable=True) from exc

    async def forget(self, player: str, character: str | None = None) -> int:
        _check_id("player", player)
        if character is not None:
            _check_id("character", character)
        self._check_open()
        target = Forget(uuid.uuid4().hex, player, character)
        # what is queued now was issued before this forget: it never reaches the database
        purged = self._writer.purge(target.covers)
        done = self._writer.call(lambda: self._forget_sync(player, character), retry=True, record=target)
        journaled = 0
        if self._journal is not None:
            journaled = await asyncio.to_thread(self._journal.purge, player, character)
        # shielded: a caller that stops waiting must not cancel the deletion
        deleted = await asyncio.shield(asyncio.wrap_future(done))
        return purged + journaled + deleted

    async def flush(self) -> None:
        self._check_open()
        await asyncio.wrap_future(self._writer.barrier())

    async def close(self) -> None:
        """Store everything queued, then release the threads and the client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._close_sync)

    # -- blocking helpers (tools, benchmarks) ------------------------------------------------------------

    def count(self) -> int:
        """How many memories are stored (blocking; lists every collection)."""
        return sum(int(c.count()) for scope in _SCOPES for c in self._collections.all(scope))

    def bulk_add(self, memories: Sequence[Memory], embeddings: Sequence[Sequence[float]]) -> None:
        """Store memories with precomputed vectors (blocking; bypasses the writer queue)."""
        if len(memories) != len(embeddings):
            raise MemoryInputError("bulk_add needs one embedding per memory")
        self._add(memories, [list(v) for v in embeddings])

    @property
    def pending_writes(self) -> int:
        """Operations queued and not yet applied."""
        return self._writer.pending

    @property
    def failed_writes(self) -> int:
        """Memories whose write failed and that wait for their next attempt (0 once they are stored)."""
        return self._writer.retrying

    @property
    def journaled_writes(self) -> int:
        """Memories (and forgets) that could not be stored before close() and went to the journal."""
        return self._writer.spilled

    @property
    def lost_writes(self) -> int:
        """Memories that could be neither stored nor journaled (no journal, or it cannot be written)."""
        return self._writer.lost

    # -- internals ---------------------------------------------------------------------------------------

    def _new_memory(self, character: str, player: str | None, text: str, kind: str, importance: float) -> Memory:
        _check_id("character", character)
        if player is not None:
            _check_id("player", player)
        if not text or not text.strip():
            raise MemoryInputError("a memory needs some text")
        if kind not in _KINDS:
            raise MemoryInputError(f"memory kind {kind!r} is not one of {sorted(_KINDS)}")
        if not 0.0 <= importance <= 1.0:
            raise MemoryInputError(f"importance {importance} is outside 0..1")
        self._check_open()
        return Memory(
            id=uuid.uuid4().hex,
            character=character,
            player=player,
            text=text.strip(),
            kind=kind,  # type: ignore[arg-type]
            importance=float(importance),
            created_at=self._clock(),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise MemoryClosedError("the memory store is closed; open a new one")

    def _write_batch(self, memories: builtins.list[Memory]) -> None:
        self._add(memories, self._embedder.embed([m.text for m in memories]))

    def _add(self, memories: Sequence[Memory], embeddings: builtins.list[builtins.list[float]]) -> None:
        groups: dict[tuple[Scope, str], builtins.list[int]] = {}
        for i, m in enumerate(memories):
            groups.setdefault(_home(m), []).append(i)
        for (scope, key), indices in groups.items():
            for start in range(0, len(indices), _MAX_CHUNK):
                chunk = indices[start : start + _MAX_CHUNK]
                records = {
                    "ids": [memories[i].id for i in chunk],
                    "embeddings": [embeddings[i] for i in chunk],
                    "documents": [memories[i].text for i in chunk],
                    "metadatas": [_metadata(memories[i]) for i in chunk],
                }
                # upsert: a retried or replayed batch may have been stored in part already
                try:
                    self._collections.get_or_create(scope, key).upsert(**records)
                except Exception:
                    # a stale handle (the collection was dropped elsewhere): look it up afresh, once
                    self._collections.evict(scope, key)
                    self._collections.get_or_create(scope, key).upsert(**records)

    def _query(
        self, scope: Scope, key: str, vector: builtins.list[float], where: dict[str, Any] | None, k: int = 1
    ) -> Any:
        n_results = max(k, self._options.candidates)
        include = ["documents", "metadatas", "distances"]
        result = None
        for attempt in range(2):  # a stale handle (the collection was dropped elsewhere): looked up afresh, once
            collection = self._collections.get(scope, key)
            if collection is None:
                return []
            try:
                result = collection.query(query_embeddings=[vector], n_results=n_results, where=where, include=include)
                break
            except Exception:
                self._collections.evict(scope, key)
                if attempt:
                    raise
        assert result is not None
        return [
            (_memory(id_, doc, meta), similarity_from_distance(dist))
            for id_, doc, meta, dist in zip(
                result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True
            )
        ]

    def _recall_sync(self, character: str, player: str, query: str, k: int, deadline: float) -> builtins.list[Recalled]:
        vector = self._embedder.embed([query])[0]
        if time.monotonic() > deadline:
            return []  # the caller has given up already: spare Chroma the query
        pairs = self._query("p", player, vector, {"character": character}, k)
        pairs += self._query("w", character, vector, None, k)
        return rank(pairs, now=self._clock(), k=k, options=self._options.rank)

    def _warm_sync(self, character: str, player: str) -> None:
        vector = [1.0] + [0.0] * (self._embedder.dimension - 1)
        self._query("p", player, vector, None)
        self._query("w", character, vector, None)

    def _list_sync(self, character: str | None, player: str | None, limit: int) -> builtins.list[Memory]:
        if player is not None:
            sources = [self._collections.get("p", player)]
        else:
            sources = list(self._collections.all("p"))
        if character is not None:
            sources.append(self._collections.get("w", character))
        else:
            sources.extend(self._collections.all("w"))
        where = {"character": character} if character is not None else None
        memories: builtins.list[Memory] = []
        for collection in sources:
            if collection is None:
                continue
            result = collection.get(where=where, include=["documents", "metadatas"])
            memories.extend(
                _memory(id_, doc, meta)
                for id_, doc, meta in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
            )
        memories.sort(key=lambda m: m.created_at, reverse=True)
        return memories[: max(0, limit)]

    def _forget_sync(self, player: str, character: str | None) -> int:
        if character is None:
            return self._collections.drop("p", player)
        collection = self._collections.get("p", player)
        if collection is None:
            return 0
        ids = list(collection.get(where={"character": character}, include=[])["ids"])
        for start in range(0, len(ids), _MAX_CHUNK):
            collection.delete(ids=ids[start : start + _MAX_CHUNK])
        return len(ids)

    def _spill(self, records: builtins.list[Record]) -> None:
        """The writer's records still unstored at close: to the journal (privacy: forgotten text is left out)."""
        assert self._journal is not None
        kept = compact(records)
        self._journal.append(kept)
        log.warning("memory database unreachable at close; writes journaled", extra={"count": len(kept)})

    def _replay(self, journal: Journal) -> None:
        """Apply the journal before serving; what fails is queued for retry and leaves the journal once stored."""
        written = journal.read()
        if not written:
            return
        records = compact(written)
        done = apply(records, self._write_batch, self._forget_sync, batch=self._options.write_batch)
        rest = records[done:]
        journal.remove({r.id for r in written} - {r.id for r in rest})
        if not rest:
            log.info("memory journal replayed", extra={"count": len(records)})
            return
        for r in rest:
            if isinstance(r, Forget):
                self._writer.call(functools.partial(self._forget_sync, r.player, r.character), retry=True, record=r)
            else:
                self._writer.add(r)
        ids = {r.id for r in rest}
        self._writer.call(lambda: journal.remove(ids))  # once they are stored: they leave the journal

    def _close_sync(self) -> None:
        try:
            self._writer.close()
        finally:
            self._reader.shutdown(wait=True)
            close_client(self._client)


if TYPE_CHECKING:
    _conforms: type[MemoryStore] = ChromaMemoryStore  # checked by mypy: the class implements the protocol


def _check_id(what: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise MemoryInputError(f"{what} must be a non-empty string")


def _home(m: Memory) -> tuple[Scope, str]:
    """The collection a memory lives in: its player's, or its character's world facts."""
    return ("p", m.player) if m.player is not None else ("w", m.character)


def _metadata(m: Memory) -> dict[str, str | float]:
    return {
        "character": m.character,
        "player": m.player if m.player is not None else _WORLD,
        "kind": m.kind,
        "importance": m.importance,
        "created_at": m.created_at,
    }


def _memory(id_: str, document: str | None, meta: Any) -> Memory:
    player = str(meta["player"])
    return Memory(
        id=id_,
        character=str(meta["character"]),
        player=player if player != _WORLD else None,
        text=document or "",
        kind=meta["kind"],
        importance=float(meta["importance"]),
        created_at=float(meta["created_at"]),
    )
