"""The server in its own process on the real llama.cpp worker, a real aiortc client: the worker is killed in
the middle of a reply (the server lives on and answers the next turns), and a long reply is spoken over. The
scenarios are in tests/worker_crash.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from worker_crash import LLM_TIMEOUT_S, barge_in, crash_mid_reply

from llmasos.client import VoiceClient

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def llamacpp_server(server_factory: Callable[..., Any]) -> Any:
    """The real server on the real llama.cpp worker (not the scripted LLM), with room for a long story."""
    env = {
        "LLMASOS_LLM__BACKEND": "llamacpp",
        "LLMASOS_LLM__MAX_NEW_TOKENS": "256",
        "LLMASOS_LLM__TIMEOUT_S": str(LLM_TIMEOUT_S),
    }
    server = server_factory("llamacpp", env)
    llm = httpx.get(f"{server.url}/healthz", timeout=10).json()["llm"]
    assert llm["backend"] == "llamacpp" and llm["state"] == "ready", llm
    return server


async def test_a_worker_killed_mid_reply_leaves_the_server_up_and_answering(
    llamacpp_server: Any, speak: Callable[[str], np.ndarray]
) -> None:
    url = llamacpp_server.url
    async with httpx.AsyncClient(timeout=10) as http:

        async def health() -> dict[str, Any]:
            res = await http.get(f"{url}/healthz")
            assert res.status_code == 200, res.text
            body: dict[str, Any] = res.json()
            return body

        async with await VoiceClient.connect(url, character="blacksmith", player="e2e-crash") as client:
            await crash_mid_reply(client, health, speak)
        assert llamacpp_server.process.poll() is None, llamacpp_server.output()  # the server lived through it
        assert (await http.get(f"{url}/healthz")).status_code == 200


async def test_barge_in_on_the_real_model(llamacpp_server: Any, speak: Callable[[str], np.ndarray]) -> None:
    async with await VoiceClient.connect(
        llamacpp_server.url, character="blacksmith", player="e2e-barge-real"
    ) as client:
        await barge_in(client, speak)
