"""Three real WebRTC clients in one room of the real server (real VAD, ASR, TTS; a scripted LLM for replies of
a known text): who is addressed, who answers, who hears what, and who may interrupt whom."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from llmasos.client import VoiceClient

pytestmark = pytest.mark.e2e

PEOPLE = {"ann": "Ann", "bob": "Bob", "cat": "Cat"}


@contextlib.asynccontextmanager
async def tavern(url: str) -> AsyncIterator[dict[str, VoiceClient]]:
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, VoiceClient] = {}
        for player, name in PEOPLE.items():
            client = await VoiceClient.connect(url, room="tavern", player=player, name=name)
            clients[player] = await stack.enter_async_context(client)
            _, session = await client.wait_for("session", timeout_s=30)
            assert session["room"] == "tavern" and session["player"] == player
        for client in clients.values():  # each sees the room with everyone in it
            await client.wait_for(
                "room", where=lambda m: set(PEOPLE) <= {p["id"] for p in m["participants"]}, timeout_s=30
            )
        yield clients


async def _said(
    clients: dict[str, VoiceClient], speaker: str, audio: np.ndarray
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """``speaker`` says ``audio``: (when it ended, the final transcript, the addressed event), as all three saw them."""
    begin = time.monotonic()
    end = await clients[speaker].say(audio)
    seen = []
    for client in clients.values():
        _, transcript = await client.wait_for("transcript", final=True, speaker=speaker, since=begin, timeout_s=60)
        _, addressed = await client.wait_for("addressed", speaker=speaker, since=begin, timeout_s=60)
        seen.append((transcript, addressed))
    assert all(s == seen[0] for s in seen), seen  # everyone is told the same
    transcript, addressed = seen[0]
    assert transcript["name"] == PEOPLE[speaker]
    return end, transcript, addressed


async def test_a_room_of_three(scripted_server: Any, scripted_llm: Any, speak: Callable[[str], np.ndarray]) -> None:
    async with tavern(scripted_server.url) as clients:
        ann, bob, cat = clients["ann"], clients["bob"], clients["cat"]
        await ann.wait_for("state", state="listening", character="innkeeper", timeout_s=60)  # the greeting is over

        # a question that names a character: it answers, and all three hear it
        end, heard, addressed = await _said(clients, "ann", speak("Brom, do you have any swords for sale?"))
        assert (addressed["character"], addressed["reason"]) == ("blacksmith", "name")
        turn = addressed["turn"]
        for client in clients.values():
            _, reply = await client.wait_for("reply", final=True, turn=turn, timeout_s=60)
            assert reply["character"] == "blacksmith"
            assert client.received.first_loud_after(end) is not None  # heard it
        await ann.wait_for("state", state="listening", turn=turn, timeout_s=60)
        asked = [m["content"] for m in scripted_llm.requests[-1]["messages"] if m["role"] == "user"]
        assert any(f"Ann: {heard['text']}" in text for text in asked), asked  # who said it, in the history

        # a follow-up by the same player goes to who answered
        _, heard, addressed = await _said(clients, "ann", speak("And how much is the steel one?"))
        assert (addressed["character"], addressed["reason"]) == ("blacksmith", "follow_up"), heard
        await ann.wait_for("state", state="listening", turn=addressed["turn"], timeout_s=60)

        # words for another player are not answered; the others hear them, the speaker does not hear themself
        start = ann.received.frames[-1][0]
        end, heard, addressed = await _said(clients, "ann", speak("Bob, shall we go to the market tomorrow?"))
        assert (addressed["character"], addressed["reason"]) == (None, "other_player"), heard
        assert bob.received.loud_seconds(start) > 1.0 and cat.received.loud_seconds(start) > 1.0
        assert ann.received.loud_seconds(start) < 0.2
        assert not [m for m in ann.of_type("reply", since=end)]

        # focus: the character a player faces gets their words
        cat.send({"type": "focus", "character": "innkeeper"})
        _, _, addressed = await _said(clients, "cat", speak("A bowl of stew, please."))
        assert (addressed["character"], addressed["reason"]) == ("innkeeper", "focus")
        _, reply = await cat.wait_for("reply", final=True, turn=addressed["turn"], timeout_s=60)
        assert reply["character"] == "innkeeper"
        await cat.wait_for("state", state="listening", turn=addressed["turn"], timeout_s=60)

        # a bystander's chatter does not stop a reply; the person it answers does
        ann.send_text("Brom, tell me a story about your forge.")
        started, speaking = await ann.wait_for(
            "state", state="speaking", character="blacksmith", since=end, timeout_s=60
        )
        story = speaking["turn"]
        await ann.wait_loud(1.5, since=started)
        chatter = time.monotonic()
        await bob.say(speak("Cat, shall we go to the market?"))
        await bob.wait_for("addressed", speaker="bob", since=chatter, timeout_s=60)
        assert not ann.of_type("interrupted", since=started)
        await ann.say(speak("Wait, stop please."))
        _, interrupted = await ann.wait_for("interrupted", turn=story, timeout_s=30)
        assert interrupted["character"] == "blacksmith" and interrupted["heard"]
