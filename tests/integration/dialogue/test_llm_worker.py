"""The LLM worker process on the packaged model: it survives its own death (llama.cpp and transformers alike),
stops on a hang-up while it computes a prompt, keeps output to a JSON schema, and says why it cannot start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from dialogue import Backend
from dialogue.errors import BackendError
from dialogue.llamacpp import cpu
from dialogue.worker import WorkerChatModel, WorkerOptions, start_worker
from dialogue.worker.protocol import MAX_LINE, Done, Request, decode_reply
from llmasos.dialogue_factory import build_backend
from llmasos.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("worker-data")
    return Settings(data_dir=Path(data), llm={"backend": "llamacpp", "max_new_tokens": 200})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def backend(settings: Settings) -> Iterator[Backend]:
    backend = build_backend(settings)
    yield backend
    assert backend.engine is not None
    backend.engine.close()


def model(backend: Backend) -> WorkerChatModel:
    assert isinstance(backend.model, WorkerChatModel)
    return backend.model


STORY = [SystemMessage("You are a storyteller."), HumanMessage("Tell me a very long story about a dragon.")]


async def test_a_killed_worker_fails_the_reply_in_flight_then_comes_back(backend: Backend) -> None:
    await _killed_mid_reply_then_answers(backend, "llamacpp")


async def test_the_transformers_worker_survives_its_death_the_same_way(settings: Settings) -> None:
    llm = settings.llm.model_copy(update={"backend": "transformers", "max_new_tokens": 200})
    backend = await asyncio.to_thread(build_backend, settings.model_copy(update={"llm": llm}))
    assert backend.engine is not None
    try:
        await _killed_mid_reply_then_answers(backend, "transformers")
    finally:
        await asyncio.to_thread(backend.engine.close)


async def _killed_mid_reply_then_answers(backend: Backend, engine: str) -> None:
    assert backend.engine is not None
    before = backend.engine.status()
    assert before["state"] == "ready" and before["pid"] != os.getpid() and before["engine"] == engine
    stream = model(backend).astream(STORY)
    assert (await anext(stream)).text  # the worker is generating
    os.kill(before["pid"], signal.SIGKILL)
    with pytest.raises(BackendError, match="LLM worker"):
        async for _ in stream:
            pass
    # the next request waits for the restart and is answered
    reply = await model(backend).ainvoke([HumanMessage("Hello!")], max_new_tokens=8)
    assert reply.text.strip()
    after = backend.engine.status()
    assert after["state"] == "ready" and after["restarts"] == before["restarts"] + 1
    assert after["pid"] not in (None, before["pid"]) and after["last_exit"] == "killed by SIGKILL"


async def test_a_hang_up_stops_the_prompt_computation_part_way(backend: Backend, settings: Settings) -> None:
    # one context: the second request below waits until the first one has ended in the worker
    weights = settings.data_dir / "cache" / "llm" / backend.options["model"]
    chat = await asyncio.to_thread(
        start_worker, WorkerOptions(model=weights, contexts=1, cpu_cache=settings.data_dir / "cpu.json")
    )
    try:
        await _hang_up_part_way(chat)
    finally:
        await asyncio.to_thread(chat.close)


async def _hang_up_part_way(chat: WorkerChatModel) -> None:
    long_prompt: list[BaseMessage] = [
        SystemMessage("You are a librarian."),
        HumanMessage(" ".join(f"Book {i} is about the history of the river town." for i in range(150))),
    ]
    request = chat.request(long_prompt, None, {"max_new_tokens": 4, "affinity": "hang-up-test"})
    reader, writer = await asyncio.open_unix_connection(chat.socket, limit=MAX_LINE)
    writer.write(request.encode())
    await writer.drain()
    writer.close()  # hang up at once: the worker is computing the ~1,500-token prompt
    await writer.wait_closed()
    done = await _done(chat, request)
    # the same prompt again finds only the part computed before the hang-up in the cache
    assert done.cached_tokens < done.input_tokens - 1, done


async def test_a_json_schema_constrains_the_output(backend: Backend) -> None:
    schema = {
        "type": "object",
        "properties": {"action": {"type": "string", "enum": ["wave", "nod", "none"]}},
        "required": ["action"],
    }
    reply = await model(backend).ainvoke(
        [HumanMessage("Wave at me! Answer as JSON.")], json_schema=schema, max_new_tokens=32, temperature=0.0
    )
    assert json.loads(reply.text)["action"] in ("wave", "nod", "none")


async def test_the_worker_reports_what_it_runs(backend: Backend) -> None:
    info = await model(backend).info()
    assert info.contexts == 2 and info.model.endswith(".q8_0.gguf")
    report = cpu.cpu_report()
    choice = model(backend).supervisor.choice
    assert choice is not None
    if cpu.variant_libraries():  # a portable build: the variant is the best one that the OS enables
        assert choice.variant == info.variant and choice.variant in cpu.candidates(report, cpu.variant_libraries())
        assert choice.tried[choice.variant] == "ok"
    assert "CPU" in info.features


def test_a_worker_that_cannot_load_its_model_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF this is not a model")
    with pytest.raises(BackendError, match=r"broken\.gguf"):
        start_worker(WorkerOptions(model=bad, cpu_cache=tmp_path / "cpu.json"))


async def _done(chat: WorkerChatModel, request: Request) -> Done:
    reader, writer = await asyncio.open_unix_connection(chat.socket, limit=MAX_LINE)
    try:
        writer.write(request.encode())
        while line := await reader.readline():
            item = decode_reply(line)
            if isinstance(item, Done):
                return item
        raise AssertionError("no Done")
    finally:
        writer.close()


def test_the_worker_does_not_outlive_a_parent_killed_with_sigkill(settings: Settings) -> None:
    """A server (or CLI) that dies without stopping its worker leaves no orphan holding ~0.5 GB."""
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from llmasos.dialogue_factory import build_backend\n"
        "from llmasos.settings import Settings\n"
        f"b = build_backend(Settings(data_dir=Path({str(settings.data_dir)!r}), llm={{'backend': 'llamacpp'}}))\n"
        "print(b.engine.status()['pid'], flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        os.kill(worker, 0)  # it runs
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 15  # a bound for a broken build, not a timing assertion
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)  # polling a process's existence: its state is what is read
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived its parent")
