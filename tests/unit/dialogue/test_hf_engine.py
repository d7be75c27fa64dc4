"""The transformers engine's streaming machinery, as the worker process runs it, on a fake model and
tokenizer (no weights): pieces then Done, a halt or a preemption stops the generation at its next token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from dialogue.hf.engine import Engine, EngineOptions
from dialogue.worker.pool import Halted, Preempted
from dialogue.worker.protocol import Done, Request

pytestmark = pytest.mark.unit

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


def engine(model: FakeModel, contexts: int = 1) -> Engine:
    return Engine(EngineOptions(Path("fake.gguf"), contexts=contexts), loaded=(model, FakeTokenizer(), "cpu"))


def ask(max_tokens: int = 6, **kw: Any) -> Request:
    return Request(messages=(("system", "sys"), ("user", "hi")), max_tokens=max_tokens, temperature=0.0, **kw)


def test_streams_pieces_then_done_with_the_token_counts() -> None:
    e = engine(FakeModel())
    items = list(e.generate(ask(), threading.Event()))
    pieces, done = items[:-1], items[-1]
    assert "".join(str(p) for p in pieces) == "w1 w2 w3 w4 w5 w6 "
    assert isinstance(done, Done) and (done.finish, done.input_tokens, done.output_tokens) == ("length", 3, 6)
    assert e.tokenizer.chats[0] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert e.pool.busy() == 0


def test_an_eos_means_a_finished_reply() -> None:
    items = list(engine(FakeModel(eos_after=2)).generate(ask(), threading.Event()))
    assert "".join(p for p in items if isinstance(p, str)) == "w1 w2 "
    assert isinstance(items[-1], Done) and items[-1].finish == "stop"


def test_a_hang_up_stops_the_generation_at_its_next_token() -> None:
    model, halt = FakeModel(), threading.Event()
    stream: Iterator[str | Done] = engine(model).generate(ask(max_tokens=10_000), halt)
    assert isinstance(next(stream), str)
    halt.set()  # the worker sets it when the client hangs up (barge-in)
    with pytest.raises(Halted):
        list(stream)
    assert model.finished.is_set() and model.generated < 10_000


def test_a_summary_yields_to_a_reply_at_its_next_token() -> None:
    model = FakeModel()
    e = engine(model, contexts=2)
    summary = e.generate(ask(max_tokens=10_000, priority="background"), threading.Event())
    assert isinstance(next(summary), str)
    reply = e.generate(ask(), threading.Event())
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.extend(reply))
    waiter.start()  # the reply is in the house: the summary stops at its next token
    with pytest.raises(Preempted, match="conversation turn"):
        list(summary)
    waiter.join(30)  # a bound for a broken build, not a timing assertion
    assert isinstance(got[-1], Done) and got[-1].output_tokens == 6


def test_a_failed_generation_fails_the_request_and_frees_its_slot() -> None:
    e = engine(FakeModel(fail=True))
    with pytest.raises(RuntimeError, match="out of memory"):
        list(e.generate(ask(), threading.Event()))
    assert e.pool.busy() == 0


def test_constrained_output_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="no constrained output"):
        list(engine(FakeModel()).generate(ask(json_schema={"type": "object"}), threading.Event()))
