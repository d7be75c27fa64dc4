"""The transformers chat model's streaming machinery on a fake model and tokenizer (no weights)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import torch
from langchain_core.messages import HumanMessage, SystemMessage

from dialogue import BackendError
from dialogue.backends.hf import TransformersChatModel

pytestmark = pytest.mark.unit

EOS = 0


class FakeTokenizer:
    eos_token_id = EOS

    def __init__(self) -> None:
        self.chats: list[list[dict[str, str]]] = []

    def apply_chat_template(self, chat: list[dict[str, str]], **kw: Any) -> Any:
        self.chats.append(chat)
        ids = torch.tensor([[5, 6, 7]])
        return _Encoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})

    def decode(self, ids: list[int], **kw: Any) -> str:
        return "".join("" if i == EOS else f"w{i} " for i in ids)


class _Encoding(dict[str, Any]):
    def to(self, device: str) -> _Encoding:
        return self


class FakeModel:
    """Generates token ids 1, 2, 3, ... (then EOS at ``eos_after``), honouring the stopping criteria."""

    def __init__(self, eos_after: int | None = None, fail: bool = False) -> None:
        self.eos_after = eos_after
        self.fail = fail
        self.generated = 0
        self.finished = threading.Event()
        self.generation_config = type("Config", (), {"eos_token_id": EOS})()

    def generate(self, **params: Any) -> torch.Tensor:
        if self.fail:
            raise RuntimeError("out of memory")
        ids = params["input_ids"]
        streamer = params["streamer"]
        streamer.put(ids)  # the prompt, as transformers does
        try:
            for step in range(1, params["max_new_tokens"] + 1):
                if any(c(ids, None) for c in params["stopping_criteria"]):
                    break
                token = EOS if self.eos_after is not None and step > self.eos_after else step
                ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
                self.generated += 1
                streamer.put(torch.tensor([token]))
                if token == EOS:
                    break
            streamer.end()
            return ids
        finally:
            self.finished.set()


def chat_model(model: FakeModel, max_new_tokens: int = 6) -> TransformersChatModel:
    return TransformersChatModel(model=model, tokenizer=FakeTokenizer(), max_new_tokens=max_new_tokens)


async def test_streams_pieces_with_usage_and_finish_reason() -> None:
    llm = chat_model(FakeModel())
    chunks = [c async for c in llm.astream([SystemMessage("sys"), HumanMessage("hi")])]
    assert "".join(c.text for c in chunks) == "w1 w2 w3 w4 w5 w6 "
    assert len([c for c in chunks if c.text]) >= 5
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage == [{"input_tokens": 3, "output_tokens": 6, "total_tokens": 9}]
    assert [c.response_metadata["finish_reason"] for c in chunks if c.response_metadata.get("finish_reason")] == [
        "length"
    ]
    assert llm.tokenizer.chats[0] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]


async def test_an_eos_means_a_finished_reply() -> None:
    llm = chat_model(FakeModel(eos_after=2))
    chunks = [c async for c in llm.astream("hi")]
    assert "".join(c.text for c in chunks) == "w1 w2 "
    assert [c.response_metadata.get("finish_reason") for c in chunks if c.response_metadata] == ["stop"]


async def test_closing_the_stream_stops_generation() -> None:
    model = FakeModel()
    llm = chat_model(model, max_new_tokens=10_000)
    stream = llm.astream("hi")
    first = await anext(stream)
    assert first.text
    await stream.aclose()
    # the loop keeps running meanwhile (closing reaches the generation through LangChain's async generators)
    assert await asyncio.to_thread(model.finished.wait, 30)  # a bound for a broken build, not a timing assertion
    assert model.generated < 10_000


async def test_a_failed_generation_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="out of memory"):
        [c async for c in chat_model(FakeModel(fail=True)).astream("hi")]


def test_sync_invoke() -> None:
    assert chat_model(FakeModel(eos_after=3)).invoke("hi").text == "w1 w2 w3 "


def test_llama_cpp_replies_go_to_the_context_that_holds_their_prompt() -> None:
    from dialogue.llamacpp.engine import ContextPool, Preempted, _Slot
    from dialogue.llamacpp.protocol import Request

    pool = ContextPool([_Slot(object()), _Slot(object())])
    reply, summary = Request(messages=()), Request(messages=(), priority="background")
    ann = [("system", "You are Brom."), ("user", "Hi, I am Ann.")]
    bob = [("system", "You are Brom."), ("user", "Bob here.")]
    first = pool.take(reply, ann)
    pool.give_back(first, reply, [*ann, ("assistant", "Hello Ann.")])
    other = pool.take(reply, bob)
    assert other is not first  # a new conversation takes the least recently used context, not Ann's cache
    with pytest.raises(Preempted):
        pool.take(summary, [("user", "summarise")])  # a turn is generating: summaries wait
    pool.give_back(other, reply, [*bob, ("assistant", "Hello Bob.")])
    again = pool.take(reply, [*ann, ("assistant", "Hello Ann."), ("user", "Any swords?")])
    assert again is first  # Ann's next turn finds the context that holds her prompt
    pool.give_back(again, reply, [])
    assert pool.take(summary, [("user", "summarise")]) in pool.slots  # idle: summaries may run


def test_generated_content_yields_to_warm_ups_and_summaries_as_well_as_to_replies() -> None:
    from dialogue.llamacpp.engine import ContextPool, Preempted, _Slot
    from dialogue.llamacpp.protocol import Request

    pool = ContextPool([_Slot(object()), _Slot(object())])
    warm, content = Request(messages=(), priority="background", affinity="ann"), Request(messages=(), priority="idle")
    job = pool.take(content, [("user", "a scene")])
    pool.yield_if_outranked(content)  # nothing else in the house: it goes on
    warming = pool.take(warm, [("system", "You are Brom.")])  # a warm-up comes while the job generates ...
    with pytest.raises(Preempted, match="background work"):
        pool.yield_if_outranked(content)  # ... and the job stops at its next batch or token
    with pytest.raises(Preempted):
        pool.take(content, [("user", "another")])  # and none starts while it runs
    pool.give_back(warming, warm, [("system", "You are Brom.")])
    pool.give_back(job, content, [])
    pool.yield_if_outranked(content)
    reply = pool.take(Request(messages=()), [("user", "hi")])
    with pytest.raises(Preempted, match="conversation turn"):
        pool.yield_if_outranked(warm)  # replies outrank both
    pool.give_back(reply, Request(messages=()), [])
    assert (pool.foreground, pool.background) == (0, 0)


def test_an_affinity_key_breaks_ties_between_equally_good_contexts() -> None:
    from dialogue.llamacpp.engine import ContextPool, _Slot
    from dialogue.llamacpp.protocol import Request

    pool = ContextPool([_Slot(object()), _Slot(object())])
    ann, bob = Request(messages=(), affinity="ann"), Request(messages=(), affinity="bob")
    a = pool.take(ann, [("user", "x")])
    b = pool.take(bob, [("user", "y")])
    pool.give_back(b, bob, [])  # bob's context is now the most recently used ...
    pool.give_back(a, ann, [])
    assert pool.take(bob, [("user", "z")]) is b  # ... but nothing is cached either way: bob gets his own


def _waiting(pool: Any, waiters: int) -> None:
    """Until ``waiters`` threads wait on the pool (a state, not a duration: fails after 10 s)."""
    deadline = time.monotonic() + 10
    while len(pool._cond._waiters) < waiters:
        assert time.monotonic() < deadline, "no request waited for a context"


def test_a_reply_waits_for_the_context_holding_its_prompt_when_that_one_is_ending() -> None:
    from dialogue.llamacpp.engine import ContextPool, _Slot
    from dialogue.llamacpp.protocol import Request

    pool = ContextPool([_Slot(object()), _Slot(object())])
    ann = [("system", "You are Brom."), ("user", "Hi, I am Ann.")]
    guess, final = Request(messages=(), affinity="ann"), Request(messages=(), affinity="ann")
    warm = pool.take(guess, ann)  # the reply to a guess at what Ann said, in progress
    pool.give_back(warm, guess, [*ann, ("assistant", "Hello")])
    held = pool.take(guess, [*ann, ("assistant", "Hello"), ("user", "Any swords")])
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.take(final, [*ann, ("assistant", "Hello")])))
    waiter.start()
    _waiting(pool, 1)  # the other context is free, but it holds nothing of Ann's
    pool.give_back(held, guess, [*ann, ("assistant", "Hello")])  # the guess was dropped
    waiter.join(10)
    assert got == [held]


def test_a_reply_does_not_wait_for_another_conversation_s_reply() -> None:
    from dialogue.llamacpp.engine import ContextPool, _Slot
    from dialogue.llamacpp.protocol import Request

    pool = ContextPool([_Slot(object()), _Slot(object())])
    shared = [("system", "You are Brom.")]
    bob, ann = Request(messages=(), affinity="bob"), Request(messages=(), affinity="ann")
    first = pool.take(bob, shared)
    pool.give_back(first, bob, shared)
    busy = pool.take(bob, [*shared, ("user", "Bob here.")])
    assert pool.take(ann, [*shared, ("user", "Hi.")]) is not busy  # Bob's reply goes on: Ann computes hers


@pytest.mark.parametrize("stopped", ["halted", "background"])
def test_a_reply_waits_for_a_stopped_request_or_a_summary_holding_its_prompt(stopped: str) -> None:
    from dialogue.llamacpp.engine import ContextPool, _Slot
    from dialogue.llamacpp.protocol import Request

    pool = ContextPool([_Slot(object()), _Slot(object())])
    ann = [("system", "You are Brom."), ("user", "Hi.")]
    other = Request(messages=(), priority="background" if stopped == "background" else "foreground")
    halt = threading.Event()
    warm = pool.take(other, ann)
    pool.give_back(warm, other, ann)
    busy = pool.take(other, ann, halt)
    if stopped == "halted":
        halt.set()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.take(Request(messages=()), [*ann, ("user", "x")])))
    waiter.start()
    _waiting(pool, 1)
    pool.give_back(busy, other, ann)
    waiter.join(10)
    assert got == [busy]


def test_work_that_is_not_a_reply_runs_one_of_its_kind_at_a_time() -> None:
    """Two warm-ups at once on two cores each take more than twice as long (their threads spin against each
    other), and the player may speak before either is done: the second waits for the first."""
    from dialogue.llamacpp.engine import ContextPool, _Slot
    from dialogue.llamacpp.protocol import Request

    pool = ContextPool([_Slot(object()), _Slot(object())])
    ann, bob = Request(messages=(), priority="background"), Request(messages=(), priority="background")
    first = pool.take(ann, [("user", "Ann's history")])
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.take(bob, [("user", "Bob's history")])))
    waiter.start()
    _waiting(pool, 1)  # a context is free, yet Bob's warm-up waits
    assert got == []
    pool.give_back(first, ann, [("user", "Ann's history")])
    waiter.join(10)
    assert got and got[0] in pool.slots
    pool.give_back(got[0], bob, [])
    assert (pool.foreground, pool.background) == (0, 0)
