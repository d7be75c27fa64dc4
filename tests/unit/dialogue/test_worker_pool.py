"""The worker's scheduling (dialogue.worker.pool), shared by its engines: which slot a request gets, who
yields to whom, who waits for whom."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from dialogue.worker.pool import ContextPool, Preempted, Slot
from dialogue.worker.protocol import Request

pytestmark = pytest.mark.unit


def test_replies_go_to_the_context_that_holds_their_prompt() -> None:
    pool = ContextPool([Slot(object()), Slot(object())])
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
    pool = ContextPool([Slot(object()), Slot(object())])
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
    pool = ContextPool([Slot(object()), Slot(object())])
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
    pool = ContextPool([Slot(object()), Slot(object())])
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
    pool = ContextPool([Slot(object()), Slot(object())])
    shared = [("system", "You are Brom.")]
    bob, ann = Request(messages=(), affinity="bob"), Request(messages=(), affinity="ann")
    first = pool.take(bob, shared)
    pool.give_back(first, bob, shared)
    busy = pool.take(bob, [*shared, ("user", "Bob here.")])
    assert pool.take(ann, [*shared, ("user", "Hi.")]) is not busy  # Bob's reply goes on: Ann computes hers


@pytest.mark.parametrize("stopped", ["halted", "background"])
def test_a_reply_waits_for_a_stopped_request_or_a_summary_holding_its_prompt(stopped: str) -> None:
    pool = ContextPool([Slot(object()), Slot(object())])
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
    pool = ContextPool([Slot(object()), Slot(object())])
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
