"""Scenarios on the real llama.cpp worker, shared by the in-process and the end-to-end tests: the worker is
killed in the middle of a reply, and a reply is spoken over (barge-in).

Everything waits on the client's messages and audio; the deadlines are only there so that a broken server
fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from llmasos.client import FRAME, LOUD, RATE, VoiceClient
from llmasos.conversation import ConversationOptions
from voice.wer import wer

APOLOGY = ConversationOptions().apology
# a story the small model cannot finish within its first clause: the worker is killed while it generates
STORY = (
    "Please tell me a very long story about your forge and your family, "
    "with many adventures, at least twenty sentences long."
)
QUESTION = "Do you have any swords for sale?"
INTERRUPTION = "Wait, stop please."

# the deadline for the model's next piece of a reply (llm.timeout_s, 20 s by default), longer here: on a loaded
# 2-core machine a first sentence can take longer, and a stall is not what these tests are about
LLM_TIMEOUT_S = 60

Health = Callable[[], Awaitable[dict[str, Any]]]  # GET /healthz, as JSON
Speech = Callable[[str], npt.NDArray[np.int16]]  # a text spoken with the packaged voice, 48 kHz mono s16


def loud_s(pcm: npt.NDArray[np.int16]) -> float:
    """Seconds of voice in 48 kHz mono audio, counted as the client counts what it receives (20 ms frames)."""
    frames = [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]
    return sum(FRAME / RATE for f in frames if float(np.abs(f.astype(np.float32)).mean()) > LOUD)


def received_loud_s(client: VoiceClient, since: float, until: float) -> float:
    return sum(FRAME / RATE for at, level in client.received.frames if since <= at <= until and level > LOUD)


async def greeted(client: VoiceClient) -> None:
    """The greeting has been spoken and the character listens."""
    await client.wait_for("reply", final=True, turn=1, timeout_s=120)
    await client.wait_for("state", state="listening", turn=1, timeout_s=120)


async def crash_mid_reply(client: VoiceClient, health: Health, speech: Speech) -> None:
    """Kill the LLM worker right after the first piece of a long reply: the reply ends with the apology (an
    `llm_unavailable` error, then the apology spoken after what was said), the worker is restarted, and the
    next typed and spoken turns are answered by the new worker."""
    await greeted(client)
    before = (await health())["llm"]
    assert before["backend"] == "llamacpp" and before["state"] == "ready", before
    pid = before["pid"]
    assert isinstance(pid, int) and pid != os.getpid()

    asked_at = time.monotonic()
    client.send_text(STORY)
    _, thinking = await client.wait_for("state", state="thinking", since=asked_at, timeout_s=60)
    turn = thinking["turn"]
    first_at, first = await client.wait_for("reply", turn=turn, final=False, timeout_s=120)
    # the precondition: the reply is under way (not final, no apology yet) when the worker is killed
    assert APOLOGY not in first["text"], (first, client.of_type("error", since=asked_at))
    assert not [m for m in client.of_type("reply") if m["turn"] == turn and m["final"]]
    os.kill(pid, signal.SIGKILL)

    try:
        error_at, error = await client.wait_for("error", code="llm_unavailable", since=first_at, timeout_s=60)
    except TimeoutError:
        raise AssertionError(
            "no llm_unavailable error after the worker was killed (did the reply end before the kill?): "
            f"{client.of_type('reply', since=first_at)}"
        ) from None
    final_at, final = await client.wait_for("reply", final=True, turn=turn, timeout_s=180)
    assert error_at <= final_at  # the error is this turn's (an error message names no turn)
    assert "LLM worker" in error["message"], error  # its death, seen at once (not the stall deadline)
    # the apology is said after whatever was said before the worker died
    assert final["text"].startswith(first["text"]), (first, final)
    assert final["text"].rstrip().endswith(APOLOGY), final
    story = final["text"].rstrip()[: -len(APOLOGY)].strip()
    assert story and APOLOGY not in story
    assert [m for m in client.of_type("reply") if m["turn"] == turn and APOLOGY in m["text"]]
    await client.wait_for("state", state="listening", turn=turn, timeout_s=60)
    assert not [m for m in client.of_type("interrupted") if m["turn"] == turn]

    # ... and spoken: voice after the error, and more voice in the turn than the story part alone makes (by at
    # least half the apology's)
    assert client.received.first_loud_after(error_at) is not None
    voiced = received_loud_s(client, asked_at, final_at)
    expected_story, expected_apology = loud_s(speech(story)), loud_s(speech(APOLOGY))
    assert voiced >= expected_story + expected_apology / 2, (voiced, expected_story, expected_apology)

    # the next typed turn is answered by the restarted worker
    typed_at = time.monotonic()
    client.send_text("Good morning! How is the forge today?")
    _, thinking = await client.wait_for("state", state="thinking", since=typed_at, timeout_s=60)
    _, reply = await client.wait_for("reply", final=True, turn=thinking["turn"], timeout_s=120)
    assert reply["text"].strip() and APOLOGY not in reply["text"], (reply, client.of_type("error", since=typed_at))
    await client.wait_for("state", state="listening", turn=reply["turn"], timeout_s=60)

    # and a spoken one
    spoken_at = await client.say(speech(QUESTION))
    _, transcript = await client.wait_for("transcript", final=True, since=spoken_at - 5, timeout_s=60)
    assert wer(QUESTION, transcript["text"]) <= 0.3, transcript  # the bound the other spoken-question tests use
    _, reply = await client.wait_for("reply", final=True, turn=transcript["turn"], timeout_s=120)
    assert reply["text"].strip() and APOLOGY not in reply["text"], reply
    assert client.received.first_loud_after(spoken_at) is not None
    assert len([e for e in client.of_type("error") if e["code"] == "llm_unavailable"]) == 1

    after = (await health())["llm"]
    assert after["restarts"] == before["restarts"] + 1, after
    assert after["state"] == "ready" and after["pid"] not in (None, pid), after
    assert after["last_exit"] == "killed by SIGKILL", after


async def barge_in(client: VoiceClient, speech: Speech) -> None:
    """Speak over a long reply of the real model: the reply is cut where it was heard, its voice stops at the
    client, and what was said over it is answered."""
    interruption = speech(INTERRUPTION)
    await greeted(client)
    asked_at = time.monotonic()
    client.send_text(STORY)
    start, speaking = await client.wait_for("state", state="speaking", since=asked_at, timeout_s=120)
    turn = speaking["turn"]
    await client.wait_loud(1.0, since=start, timeout_s=60)  # the story has been heard for a while
    assert not [m for m in client.of_type("reply") if m["turn"] == turn and m["final"]]
    await client.say(interruption)
    try:
        interrupted_at, interrupted = await client.wait_for("interrupted", turn=turn, timeout_s=30)
    except TimeoutError:
        raise AssertionError(f"the reply was not interrupted: {client.of_type('reply', since=start)}") from None

    # what was heard is the start of what the reply had said, and the reply never finished
    heard = interrupted["heard"]
    said = [m["text"] for m in client.of_type("reply") if m["turn"] == turn]
    assert heard and said and said[-1].strip().startswith(heard), (heard, said[-1:])
    assert not [m for m in client.of_type("reply") if m["turn"] == turn and m["final"]]

    # the interruption is answered; until that answer speaks, nothing loud arrives beyond what was in flight
    # (the speaker's 200 ms buffer and the network)
    # (the end-of-turn model may end a turn at "Wait,": the player going on carries it into the turn of "stop")
    _, transcript = await client.wait_for(
        "transcript", final=True, since=interrupted_at - 5, timeout_s=60, where=lambda m: "stop" in m["text"].lower()
    )
    next_turn = transcript["turn"]
    assert next_turn > turn
    next_start, _ = await client.wait_for("state", state="speaking", turn=next_turn, timeout_s=120)
    late = [at for at, level in client.received.frames if interrupted_at + 0.4 < at < next_start and level > LOUD]
    assert late == []
    _, reply = await client.wait_for("reply", final=True, turn=next_turn, timeout_s=120)
    assert reply["text"].strip()
    assert client.received.first_loud_after(next_start) is not None
