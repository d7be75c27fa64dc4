"""The `openai` backend against a real OpenAI-compatible server: llama-cpp-python's own (`llama_cpp.server`,
started by the test on the packaged GGUF with the CPU variant chosen for this machine). Content generation is
schema-constrained through `response_format` (the server refuses the `json_schema` form; the backend falls back
to the `{"type": "json_object", "schema"}` form and keeps it), and a conversation's replies stream from it (the
scale-out path: the model on another process or machine)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dialogue import Backend, DialogueManager, ReplyDone
from dialogue.backends.openai_compat import OpenAICompatChatModel
from dialogue.generate import generate
from dialogue.kinds import KINDS, MODELS, Kind, problems
from llmasos.content import library, scan_characters
from llmasos.dialogue_factory import build_backend
from llmasos.settings import Settings

pytestmark = pytest.mark.integration

REQUESTS = {
    "character": "An old lighthouse keeper who collects shells.",
    "quest": "The innkeeper lost her cat near the square.",
    "scene": "The village square on market day.",
    "story": "A fable about a fox and a crow.",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=Path(tmp_path_factory.mktemp("openai-data")), llm={"backend": "llamacpp"})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    # the worker backend prepares the model file and proves which CPU variant runs here; the server uses both
    local = build_backend(settings)
    supervisor = local.model.supervisor  # type: ignore[attr-defined]
    model, choice = supervisor.options.model, supervisor.choice
    local.engine.close()  # type: ignore[union-attr]
    port = _free_port()
    cmd = [sys.executable, "-m", "dialogue.llamacpp.openai_server", "--model", str(model), "--port", str(port)]
    if choice is not None and choice.library is not None:
        cmd += ["--variant", str(choice.library)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    assert proc.stdout is not None
    said: list[str] = []
    for raw in proc.stdout:  # until it says it is ready (or exits); the test's timeout bounds the wait
        said.append(raw.decode(errors="replace").rstrip())
        if said[-1] == f"ready {url}":
            break
    else:
        pytest.fail(f"llama_cpp.server exited with {proc.wait()}: {' | '.join(said[-20:])}")
    assert httpx.get(f"{url}/models", timeout=5.0).status_code == 200
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    proc.stdout.close()


@pytest.fixture(scope="module")
def backend(settings: Settings, server: str) -> Backend:
    llm = settings.llm.model_copy(update={"backend": "openai", "base_url": server, "timeout_s": 120.0})
    backend = build_backend(settings.model_copy(update={"llm": llm}))
    assert backend.name == "openai" and backend.structured_output
    return backend


@pytest.mark.parametrize("kind", KINDS)
async def test_each_kind_is_valid_through_the_server(kind: Kind, backend: Backend, settings: Settings) -> None:
    characters, _ = scan_characters(settings)
    known = library(settings).known(kind, characters)
    for seed in range(3):
        got = await generate(backend.model, kind, REQUESTS[kind], known, seed=seed)
        content = MODELS[kind].model_validate(got.content)
        assert problems(kind, content, known) == [], (seed, got.content)
    assert isinstance(backend.model, OpenAICompatChatModel)
    assert backend.model.schema_form == "json_object"  # llama.cpp's server form, learnt at the first call


async def test_a_conversation_replies_through_the_server(backend: Backend, settings: Settings) -> None:
    brom = scan_characters(settings)[0]["blacksmith"]
    events = [e async for e in DialogueManager(backend, brom).reply("Good day! Do you sell swords?")]
    done = [e for e in events if isinstance(e, ReplyDone)]
    assert len(done) == 1 and done[0].full_text.strip()
