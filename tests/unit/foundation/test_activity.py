"""Activity: background model work runs while no session is active and stops when one becomes active."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fakes import make_conversation, play_until_final, start

from llmasos.activity import Activity, Yielded
from voice.types import SpeechStarted, Transcript, Utterance

pytestmark = pytest.mark.unit


async def test_work_runs_at_once_while_idle() -> None:
    async def work() -> str:
        return "summary"

    assert await Activity().run(work) == "summary"


async def test_work_waits_while_a_session_is_active_and_yields_when_one_becomes_active() -> None:
    activity, started, release = Activity(), asyncio.Event(), asyncio.Event()
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()
        return "done"

    activity.set("ann", True)
    job = asyncio.ensure_future(activity.run(work))
    await asyncio.sleep(0)
    assert runs == 0  # Ann is speaking: nothing starts
    activity.set("ann", False)
    await started.wait()
    activity.set("bob", True)  # Bob starts to speak: the work in progress stops
    with pytest.raises(Yielded):
        await job
    activity.set("bob", False)
    started.clear()
    again = asyncio.ensure_future(activity.run(work))
    await started.wait()
    release.set()
    assert await again == "done" and runs == 2


async def test_cancelling_the_caller_is_not_a_yield() -> None:
    activity, started = Activity(), asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    job = asyncio.ensure_future(activity.run(work))
    await started.wait()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job


async def test_a_conversation_is_active_from_speech_to_the_end_of_the_reply() -> None:
    conv, t, listener, _, _ = make_conversation("Yes. We have swords.")
    activity = conv.services.activity
    task = await start(conv)
    assert activity.idle
    listener.events.put_nowait(SpeechStarted(at_s=1.0))
    listener.events.put_nowait(Utterance(np.zeros(1600, dtype=np.float32), 0.7, 2.0, "silence", 0))
    listener.events.put_nowait(Transcript("Any swords?", "en", final=True, utterance=0))
    await t.until(lambda m: m["type"] == "state" and m["state"] == "thinking")
    assert not activity.idle
    await play_until_final(t)
    await t.until(lambda m: m["type"] == "state" and m["state"] == "listening" and m.get("turn") == 1)
    assert activity.idle
    t.closed.set()
    await task
