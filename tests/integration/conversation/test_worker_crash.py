"""The LLM worker killed in the middle of a reply, with the whole server in the test's own process: real
models, the real llama.cpp worker process, a real aiortc client. The scenario is in tests/worker_crash.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from fastapi import FastAPI
from worker_crash import LLM_TIMEOUT_S, crash_mid_reply

from llmasos.client import VoiceClient
from llmasos.engine import Engine, load_engine
from llmasos.server import ServerState, create_app
from llmasos.settings import load_settings
from voice.audio import float_to_s16, resample, s16_to_float

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BASE = "http://127.0.0.1"  # the signalling goes through the ASGI app in-process; media over loopback UDP


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    settings = load_settings(
        None,
        data_dir=str(tmp_path_factory.mktemp("worker-crash") / "data"),
        # a story is long: the kill comes mid-reply
        llm={"backend": "llamacpp", "max_new_tokens": 256, "timeout_s": LLM_TIMEOUT_S},
    )
    return load_engine(settings, progress=lambda line: None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(engine: Engine) -> AsyncIterator[FastAPI]:
    app = create_app(engine.settings, loader=lambda settings, progress: engine)
    async with app.router.lifespan_context(app):  # its end closes the engine, and so stops the worker
        state: ServerState = app.state.llmasos
        await state.ready.wait()
        assert state.engine is engine
        yield app


def _speech(engine: Engine, text: str) -> npt.NDArray[np.int16]:
    pcm = engine.tts.synthesize_sync(text)
    return float_to_s16(resample(s16_to_float(pcm), engine.tts.sample_rate, 48_000))


async def test_a_worker_killed_mid_reply_ends_it_with_the_apology_and_the_next_turns_are_answered(
    app: FastAPI, engine: Engine
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:

        async def health() -> dict[str, Any]:
            res = await http.get("/healthz")
            assert res.status_code == 200, res.text
            body: dict[str, Any] = res.json()
            return body

        client = await VoiceClient.connect(BASE, character="blacksmith", player="crash-inproc", http=http)
        async with client:
            await crash_mid_reply(client, health, lambda text: _speech(engine, text))
        assert engine.backend.engine is not None
        assert engine.backend.engine.status()["state"] == "ready"
