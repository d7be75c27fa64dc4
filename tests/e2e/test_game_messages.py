"""The game talks to the character over the data channel of a real peer, with the server in its own process:
`world` facts reach the prompt of a spoken turn, and a failed world action (`action_result`) is answered; an
offer with `greet: false` gets no greeting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from llmasos.client import VoiceClient

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


def _last_user(request: dict[str, Any]) -> str:
    return str(next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user"))


async def test_world_facts_reach_a_spoken_turn_and_a_failed_action_is_answered(
    scripted_server: Any, scripted_llm: Any, speak: Callable[[str], np.ndarray]
) -> None:
    question = speak("Could you hand me the hammer?")
    url = scripted_server.url
    async with await VoiceClient.connect(url, character="blacksmith", player="e2e-game", greet=False) as client:
        await client.wait_for("state", state="listening", timeout_s=60)
        client.send({"type": "world", "facts": ["It is raining", "The player carries two buckets."]})
        asked = len(scripted_llm.requests)
        await client.say(question)
        _, action = await client.wait_for("action", name="give_item", timeout_s=120)
        turn = action["turn"]
        assert turn == 1 and [m["turn"] for m in client.of_type("reply")] == [1] * len(client.of_type("reply"))
        prompt = _last_user(scripted_llm.requests[asked])
        assert "Right now: It is raining. The player carries two buckets." in prompt
        assert "hammer" in prompt.lower()
        assert action["args"] == {"item": "hammer", "target": "player"}

        # the game cannot do it: the character hears why and answers, after its reply, as a turn of its own
        client.send({"type": "action_result", "turn": turn, "action": "give_item", "ok": False, "reason": "hands full"})
        _, reply = await client.wait_for("reply", final=True, turn=turn + 1, timeout_s=120)
        assert reply["text"] == "Ah, your hands are full. I will keep it here for you."
        assert "(give_item did not work: hands full)" in _last_user(scripted_llm.requests[-1])
        assert not client.of_type("interrupted") and not client.of_type("error")

        client.send({"type": "action_result", "turn": 99, "action": "give_item", "ok": True})
        _, error = await client.wait_for("error", timeout_s=30)
        assert error["code"] == "bad_message"  # and the session goes on
        client.send({"type": "ping", "id": 7})
        await client.wait_for("pong", id=7, timeout_s=30)


async def test_a_session_closed_over_http_can_be_resumed_once_with_its_history_and_no_greeting(
    scripted_server: Any, scripted_llm: Any
) -> None:
    import httpx

    url = scripted_server.url
    async with await VoiceClient.connect(url, character="blacksmith", player="e2e-resume") as first:
        await first.wait_for("state", state="listening", turn=1, timeout_s=120)  # greeted
        first.send_text("Could you hand me the hammer?")
        await first.wait_for("state", state="listening", turn=2, timeout_s=120)
        async with httpx.AsyncClient() as http:
            closed = await http.delete(f"{url}/sessions/{first.session}")
            assert closed.status_code == 200 and closed.json() == {"session": first.session, "status": "closed"}
            assert (await http.delete(f"{url}/sessions/{first.session}")).json()["error"]["code"] == "unknown_session"

    async with await VoiceClient.connect(
        url, character="blacksmith", player="e2e-resume", resume=first.session
    ) as again:
        assert again.resumed
        await again.wait_for("state", state="listening", timeout_s=60)
        asked = len(scripted_llm.requests)
        again.send_text("What did I ask you for?")
        _, reply = await again.wait_for("reply", final=True, timeout_s=120)
        assert reply["turn"] == 1  # no second greeting: the first turn is the answer
        history = [m["content"] for m in scripted_llm.requests[asked]["messages"]]
        assert any("hand me the hammer" in text for text in history)  # the conversation went on
        assert any("Mind, it is heavy." in text for text in history)

    from llmasos.client import ClientError

    for player, session in (("e2e-resume", first.session), ("someone-else", again.session)):  # once, by its player
        with pytest.raises(ClientError) as refused:
            await VoiceClient.connect(url, character="blacksmith", player=player, resume=session, timeout_s=10)
        assert (refused.value.status, refused.value.code) == (404, "unknown_session")
