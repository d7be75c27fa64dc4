"""Fixtures for memory/ on a real ChromaDB: stores on disk, the packaged MiniLM, a `chroma run` server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from llmasos.memory_factory import load_embedder
from llmasos.settings import Settings
from memory import ChromaMemoryStore, ChromaStoreOptions, HashingEmbedder, SentenceTransformerEmbedder
from memory.chroma_client import open_persistent

OpenStore = Callable[..., ChromaMemoryStore]


@pytest.fixture
async def open_store() -> AsyncIterator[OpenStore]:
    """Opens stores in a folder with the hashing embedder; closes the ones a test left open."""
    opened: list[ChromaMemoryStore] = []

    def open_(path: Path, **kwargs: object) -> ChromaMemoryStore:
        embedder = kwargs.pop("embedder", None) or HashingEmbedder(128)
        store = ChromaMemoryStore(open_persistent(path), embedder, ChromaStoreOptions(**kwargs))  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()  # idempotent: a no-op for the stores a test closed itself


@pytest.fixture
async def store(tmp_path: Path, open_store: OpenStore) -> AsyncIterator[ChromaMemoryStore]:
    s = open_store(tmp_path / "chroma")
    yield s
    await s.close()


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2, verified and loaded once per session."""
    return load_embedder(Settings(data_dir=tmp_path_factory.mktemp("data")))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chroma_script() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    if found is None:
        pytest.fail("the `chroma` console script (chromadb) is not installed beside this Python")
    return found


class ChromaServer:
    """A real `chroma run` on a loopback port over a folder; it can be stopped and started again on both."""

    def __init__(self, path: Path, port: int, log_path: Path) -> None:
        self.path = path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and return once its heartbeat answers."""
        assert self._proc is None, "already running"
        with self._log_path.open("ab") as log:
            self._proc = proc = subprocess.Popen(
                [_chroma_script(), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}: {self._log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("chroma run did not answer its heartbeat within 60 s")
                try:  # poll again in 0.1 s, or sooner if the server exits
                    proc.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 15 s) and wait until it has exited."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def chroma_process(tmp_path: Path) -> Iterator[ChromaServer]:
    """A running `chroma run` the test may stop and start again."""
    server = ChromaServer(tmp_path / "server-db", _free_port(), tmp_path / "chroma-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chroma_server(chroma_process: ChromaServer) -> str:
    """A real `chroma run` on a free loopback port; its URL once its heartbeat answers."""
    return chroma_process.url
