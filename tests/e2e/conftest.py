"""End-to-end fixtures: the real server in its own process, a scripted OpenAI-compatible LLM, and speech
made with the packaged voice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from llmasos.models import ModelStore, Role, resolve
from voice.audio import float_to_s16, resample, s16_to_float
from voice.tts import PiperTTS

STARTUP_DEADLINE_S = 420.0
_SERVERS: list[RunningServer] = []  # every server started: stopped at the end, their logs shown under a failed test
_MARKS = pytest.StashKey[dict[Path, int]]()  # per test, where each server's log stood when it began
_LOG_LINES = 200  # of each server's log, at most, shown under a failed test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    item.stash[_MARKS] = {s.log: s.log.stat().st_size for s in _SERVERS if s.log.exists()}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test shows what each server logged while it ran (a CI failure is read from its log alone)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if call.when != "call" or not report.failed:
        return
    marks = item.stash.get(_MARKS, {})
    for server in _SERVERS:
        if not server.log.exists():
            continue
        with server.log.open(errors="replace") as f:
            f.seek(marks.get(server.log, 0))
            lines = [line.rstrip() for line in f if " DEBUG " not in line and "aioice" not in line]
        if lines:
            report.sections.append((f"server log ({server.log.parent.name})", "\n".join(lines[-_LOG_LINES:])))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ScriptedLLM:
    """An OpenAI-compatible /v1/chat/completions that streams a scripted reply chosen by keyword.

    ``requests`` keeps every request body, so tests can read the prompts (history, memories) it was sent.
    """

    replies: dict[str, str]
    default: str = "I see. Tell me more."
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def reply_for(self, body: dict[str, Any]) -> str:
        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        for keyword, reply in self.replies.items():
            if keyword in last.lower():
                return reply
        return self.default


@pytest.fixture(scope="session")
def scripted_llm() -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM(
        replies={
            "story": (
                "Gather round. [wave target=player] Long ago, in the years before the great frost, my grandfather "
                "built this forge with his own two hands, stone by stone, from the grey rocks of the river bed. "
                "He worked the bellows from dawn until dusk, and the whole valley could hear his hammer ringing "
                "on the anvil like a bell. Travellers came from the far hills to buy his blades, and every one of "
                "them swore that his steel never dulled, never rusted, and never broke. When he grew old he "
                "taught my father, and my father taught me, and one day I shall teach my daughter Elsa. "
                "[nod] And that is why the fire in this forge has never once gone out."
            ),
            # first: the words of a failed action come with memories of the question that asked for the hammer
            "did not work": "Ah, your hands are full. I will keep it here for you.",
            "hammer": "Here you are. [give_item item=hammer target=player] Mind, it is heavy.",
            "weather": "The wind is cold today, and the clouds hang low over the hills. It will rain by nightfall.",
        }
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            llm.requests.append(body)
            text = llm.reply_for(body)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            words = text.split(" ")
            for i, word in enumerate(words):
                delta = word if i == 0 else " " + word
                chunk = {"choices": [{"index": 0, "delta": {"content": delta}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    llm.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield llm
    server.shutdown()
    server.server_close()


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningServer]]:
    """Start `llmasos serve` in its own process (offline, network refused); wait until /healthz says 200."""
    netguard = Path(__file__).resolve().parents[1] / "netguard"
    repo = Path(__file__).resolve().parents[2]

    def start(name: str, extra_env: dict[str, str] | None = None) -> RunningServer:
        root = tmp_path_factory.mktemp(name)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMASOS_")}
        env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "PYTHONPATH": os.pathsep.join([str(netguard), str(repo)]),
                "PYTHONUNBUFFERED": "1",
                "LLMASOS_DATA_DIR": str(root / "data"),
            }
        )
        env.update(extra_env or {})
        log = root / "server.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "llmasos", "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        server = RunningServer(f"http://127.0.0.1:{port}", root / "data", process, log)
        _SERVERS.append(server)
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:  # readiness poll with a deadline: the server says when its models are loaded
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not become healthy:\n{server.output()}")
            time.sleep(0.5)

    yield start
    for server in _SERVERS:
        stop(server)


def stop(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session")
def server(server_factory: Callable[..., RunningServer]) -> RunningServer:
    """The default server: every packaged model, the real LLM (shared by the e2e modules)."""
    return server_factory("default")


@pytest.fixture(scope="session")
def speak() -> Callable[[str], np.ndarray]:
    """Speech for a text, made with the packaged voice, as 48 kHz mono s16 (what a microphone sends)."""
    path = resolve(ModelStore(Path(os.environ.get("LLMASOS_DATA_DIR", "/tmp/llmasos-test-data"))), Role.TTS, None, None)
    tts = PiperTTS.load(path)

    def make(text: str) -> np.ndarray:
        pcm = tts.synthesize_sync(text)
        return float_to_s16(resample(s16_to_float(pcm), tts.sample_rate, 48_000))

    return make


@pytest.fixture(scope="session")
def scripted_server(server_factory: Callable[..., RunningServer], scripted_llm: ScriptedLLM) -> RunningServer:
    """The real server with a scripted OpenAI-compatible LLM, for replies of a known text."""
    return server_factory(
        "scripted",
        {
            "LLMASOS_LLM__BACKEND": "openai",
            "LLMASOS_LLM__BASE_URL": scripted_llm.url,
            "LLMASOS_LLM__NATIVE_TOOLS": "false",
            "LLMASOS_LLM__MAX_NEW_TOKENS": "400",
        },
    )
