"""A recall that cannot answer is reported, by the real store, and counted by the conversation in /metrics.

Real ChromaDB throughout: a `chroma run` server stopped under a store (the recall fails: "error"), and the
embedded database behind an embedder that is stuck (the recall runs out of its budget: "timeout").
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fakes import CHARACTER, FakeTransport, FakeVoice, ScriptedListener, play_until_final, start
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from dialogue import Backend, DialogueManager
from llmasos.conversation import Conversation, ConversationOptions, Services
from llmasos.metrics import Metrics
from memory import ChromaMemoryStore, ChromaStoreOptions, HashingEmbedder, MemoryRecallError, MemoryStore
from memory.chroma_client import open_http, open_persistent
from rtc.protocol import TextMessage

if TYPE_CHECKING:
    from tests.integration.memory.conftest import ChromaServer  # the chroma_process fixture

pytestmark = pytest.mark.integration

EMBEDDER = HashingEmbedder(128)


class StuckEmbedder(HashingEmbedder):
    """Embeds until ``stuck`` is set, then blocks until it is cleared (a backend that hangs)."""

    def __init__(self) -> None:
        super().__init__(128)
        self.stuck = threading.Event()
        self.free = threading.Event()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.stuck.is_set():
            self.free.wait()
        return super().embed(texts)


async def test_a_recall_against_a_stopped_server_is_reported_as_an_error(chroma_process: ChromaServer) -> None:
    store = ChromaMemoryStore(open_http(chroma_process.url), EMBEDDER)
    try:
        await store.remember("smith", "alice", "alice bought a sword")
        await store.flush()
        assert [r.memory.text for r in await store.recall("smith", "alice", "sword", k=3, budget_s=30)] == [
            "alice bought a sword"
        ]
        chroma_process.stop()
        with pytest.raises(MemoryRecallError) as info:  # not [] as if alice had no memories
            await store.recall("smith", "alice", "sword", k=3, budget_s=30)
        assert info.value.reason == "error" and info.value.__cause__ is not None
    finally:
        await store.close()


async def test_a_recall_over_its_budget_is_reported_as_a_timeout(tmp_path: Path) -> None:
    embedder = StuckEmbedder()
    store = ChromaMemoryStore(open_persistent(tmp_path / "chroma"), embedder, ChromaStoreOptions())
    try:
        embedder.stuck.set()
        with pytest.raises(MemoryRecallError) as info:
            await store.recall("smith", "alice", "sword", k=3, budget_s=0.05)
        assert info.value.reason == "timeout"
    finally:
        embedder.free.set()
        await store.close()


def _conversation(memory: MemoryStore, metrics: Metrics, budget_s: float) -> tuple[Conversation, FakeTransport]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Still here.")] * 5))
    transport, listener = FakeTransport(), ScriptedListener()
    services = Services(open_listener=lambda: listener, tts=FakeVoice(), memory=memory, observer=metrics)
    options = ConversationOptions(greet=False, recall_budget_s=budget_s)
    conversation = Conversation(services, transport, DialogueManager(Backend("fake", model), CHARACTER), "ann", options)
    return conversation, transport


async def _ask(conversation: Conversation, transport: FakeTransport) -> str:
    task = await start(conversation)
    transport.inbox.put_nowait(TextMessage(type="text", text="Remember me?"))
    reply: str = (await play_until_final(transport))["text"]
    transport.closed.set()
    await task
    return reply


async def test_the_conversation_counts_a_recall_from_a_stopped_server_in_metrics(
    chroma_process: ChromaServer,
) -> None:
    metrics = Metrics()
    store = ChromaMemoryStore(open_http(chroma_process.url), EMBEDDER)
    try:
        chroma_process.stop()
        conversation, transport = _conversation(store, metrics, budget_s=30)
        assert await _ask(conversation, transport) == "Still here."  # the reply goes on without memories
    finally:
        await store.close()
    text = metrics.render().decode()
    assert 'llmasos_errors_total{kind="memory_recall_error"} 1.0' in text
    assert 'llmasos_errors_total{kind="memory_recall_timeout"} 0.0' in text


async def test_the_conversation_counts_a_recall_over_its_budget_in_metrics(tmp_path: Path) -> None:
    metrics = Metrics()
    embedder = StuckEmbedder()
    store = ChromaMemoryStore(open_persistent(tmp_path / "chroma"), embedder, ChromaStoreOptions())
    try:
        embedder.stuck.set()
        conversation, transport = _conversation(store, metrics, budget_s=0.05)
        assert await _ask(conversation, transport) == "Still here."
    finally:
        embedder.free.set()
        await store.close()
    text = metrics.render().decode()
    assert 'llmasos_errors_total{kind="memory_recall_timeout"} 1.0' in text
    assert 'llmasos_errors_total{kind="memory_recall_error"} 0.0' in text
