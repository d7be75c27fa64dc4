"""The whole server in the test's own process: real models, real ChromaDB, a real aiortc client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from llmasos.client import VoiceClient
from llmasos.engine import Engine, load_engine
from llmasos.server import ServerState, create_app
from llmasos.settings import load_settings
from voice.audio import float_to_s16, resample, s16_to_float

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

BASE = "http://127.0.0.1"  # the signalling goes through the ASGI app in-process; media over loopback UDP


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    settings = load_settings(None, data_dir=str(tmp_path_factory.mktemp("inprocess") / "data"))
    return load_engine(settings, progress=lambda line: None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(engine: Engine) -> AsyncIterator[FastAPI]:
    app = create_app(engine.settings, loader=lambda settings, progress: engine)
    async with app.router.lifespan_context(app):
        state: ServerState = app.state.llmasos
        await state.ready.wait()
        assert state.engine is engine
        yield app


def _speech(engine: Engine, text: str) -> object:
    pcm = engine.tts.synthesize_sync(text)
    return float_to_s16(resample(s16_to_float(pcm), engine.tts.sample_rate, 48_000))


async def test_speech_and_interrupt_in_process(app: FastAPI, engine: Engine) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        assert (await http.get("/healthz")).status_code == 200
        client = await VoiceClient.connect(BASE, character="museum_guide", player="inproc", http=http)
    async with client:
        await client.wait_for("reply", final=True, turn=1, timeout_s=120)  # the greeting
        await client.wait_for("state", state="listening", turn=1, timeout_s=60)
        spoken_at = await client.say(_speech(engine, "Where are the dinosaurs?"))  # type: ignore[arg-type]
        _, transcript = await client.wait_for("transcript", final=True, since=spoken_at - 5, timeout_s=60)
        assert "dinosaur" in transcript["text"].lower()
        _, reply = await client.wait_for("reply", final=True, since=spoken_at, timeout_s=120)
        assert client.received.first_loud_after(spoken_at) is not None

        # a typed message, then the client interrupts the reply as soon as it speaks
        client.send_text("Tell me everything about the museum, please.")
        turn = reply["turn"] + 1
        start, _ = await client.wait_for("state", state="speaking", turn=turn, timeout_s=120)
        client.send({"type": "interrupt"})
        _, interrupted = await client.wait_for("interrupted", turn=turn, timeout_s=30)
        _, listening = await client.wait_for("state", state="listening", turn=turn, timeout_s=30)
        # what was heard is the start of what the reply had said so far (possibly nothing yet)
        said = [m["text"] for m in client.of_type("reply") if m["turn"] == turn]
        assert said and said[-1].strip().startswith(interrupted["heard"])
        assert not [m for m in client.of_type("reply") if m["turn"] == turn and m.get("final")]

    # the session is gone once the client has closed
    state: ServerState = app.state.llmasos
    for session in list(state.sessions.values()):
        await session.task
    assert state.sessions == {}
    await engine.memory.flush()
    memories = await engine.memory.list("museum_guide", "inproc")
    assert any("Where are the dinosaurs" in m.text for m in memories)
    assert (engine.settings.data_dir / "chroma").is_dir()  # on disk, in the data directory

    # privacy: the player is forgotten everywhere through the API
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        res = await http.delete("/players/inproc/memories")
    assert res.status_code == 200 and res.json()["deleted"] >= 2
    assert [m for m in await engine.memory.list("museum_guide", "inproc") if m.player == "inproc"] == []
