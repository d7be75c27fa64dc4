"""The 3D world client in a real headless Chromium, WebGL through SwiftShader: it loads with no request leaving
the server and no console error, draws the character's stage, and after a spoken request ("Could you hand me
the hammer, please?") the character performs the action asked for while its mouth moves with the voice; a room shows its
characters, and a scene generated on the real model opens with its places. A screenshot is kept
(LLMASOS_ARTIFACTS, or the test's temporary folder)."""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from browser import CHROMIUM, FLAGS, WEBGL

from voice.audiofile import write_wav

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mic") / "silence.wav"
    write_wav(path, np.zeros(48_000, dtype=np.int16), 48_000)
    return path


@contextlib.contextmanager
def world_page(server_url: str, query: str, mic: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    """The page, every request it made, and every console error or page error it had."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*FLAGS, *WEBGL, f"--use-file-for-fake-audio-capture={mic}"]
        )
        try:
            page = browser.new_page(viewport={"width": 960, "height": 600})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{server_url}/world?{query}")
            try:
                page.wait_for_function("window.llmasos?.ready && window.llmasos.frames > 2", timeout=60_000)
            except Exception as exc:
                state = page.evaluate("JSON.stringify(window.llmasos ?? null)")
                raise AssertionError(f"the page did not start: {problems} {state[:2000]}") from exc
            yield page, requests, problems
        finally:
            browser.close()


def _wait(page: Any, condition: str, timeout_s: float = 120) -> None:
    """Wait for ``condition`` on the page; on a timeout, say what the page saw."""
    try:
        page.wait_for_function(condition, timeout=timeout_s * 1000)
    except Exception as exc:
        seen = page.evaluate(
            "JSON.stringify({states: window.llmasos.states, transcripts: window.llmasos.transcripts, "
            "actions: window.llmasos.actions, performed: window.llmasos.performed, errors: window.llmasos.errors, "
            "replies: window.llmasos.replies})"
        )
        raise AssertionError(f"{condition} never held; the page saw {seen[:3000]}") from exc


def _artifact(name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LLMASOS_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def test_the_world_client_performs_a_spoken_request_with_lip_sync(
    server: Any, silence: Path, speak: Callable[[str], np.ndarray], tmp_path: Path
) -> None:
    wav = tmp_path / "ask.wav"
    pause = np.zeros(24_000, dtype=np.int16)  # half a second before it, as a person draws breath
    write_wav(wav, np.concatenate([pause, speak("Could you hand me the hammer, please?")]), 48_000)
    ask = base64.b64encode(wav.read_bytes()).decode("ascii")
    # the browser draws in software on the cores the server's models use: a few frames a second leave them be
    query = "character=blacksmith&player=world-e2e&aec=0&mic=inject&autoconnect=1&fps=5"
    with world_page(server.url, query, silence) as (page, requests, problems):
        assert page.evaluate("window.llmasos.webgl"), "WebGL through SwiftShader"
        layout = page.evaluate("window.llmasos.layout")
        assert {p["name"] for p in layout["places"]} >= {"counter", "door"}
        assert {p["name"] for p in layout["props"]} == {"iron_sword", "steel_sword", "horseshoe", "hammer"}
        _wait(page, "window.llmasos.states.some(s => s.state === 'listening' && s.turn === 1)")  # it greeted
        greeting_moves = page.evaluate("window.llmasos.mouth.moves")
        assert greeting_moves > 3 and page.evaluate("window.llmasos.visemes") > 0
        page.evaluate("(wav) => window.llmasos.say(wav)", ask)
        _wait(page, "window.llmasos.performed.some(p => p.name === 'give_item')")
        give = page.evaluate("window.llmasos.performed.find(p => p.name === 'give_item')")
        assert give["args"] == {"item": "hammer", "target": "player"} and give["turn"] >= 2
        # performed as the character starts to speak: the page's own playback clock had started
        assert give["played_ms"] is not None and give["played_ms"] < 1000
        assert page.evaluate("window.llmasos.given") == ["hammer"]  # the hammer flies to the player
        _wait(page, f"window.llmasos.states.some(s => s.state === 'listening' && s.turn === {give['turn']})")
        seen = page.evaluate("window.llmasos")
        print("metrics of the turn:", [m for m in seen["metrics"] if m["turn"] == give["turn"]])
        assert seen["mouth"]["moves"] > greeting_moves and seen["mouth"]["maxOpen"] >= 0.6
        assert seen["played"] > 0  # it told the server what it played
        page.screenshot(path=str(_artifact("world.png", tmp_path)))
    origin = server.url
    assert [u for u in requests if not u.startswith((origin, "data:", "blob:"))] == []
    assert problems == []


def test_a_room_and_a_generated_scene_open_in_the_world_client(server: Any, silence: Path, tmp_path: Path) -> None:
    with world_page(server.url, "room=tavern&player=world-room", silence) as (page, _, problems):
        layout = page.evaluate("window.llmasos.layout")
        ids = {c["id"] for c in layout["characters"]}
        assert (
            ids == {"innkeeper", "blacksmith"} and set(page.evaluate("Object.keys(window.llmasos.characters)")) == ids
        )
        assert problems == []
    # a scene made from a request in words on the real model, saved, then drawn with its places
    with httpx.Client(base_url=server.url, timeout=30) as http:
        job = http.post("/generate", json={"kind": "scene", "prompt": "A small harbour with a fish market.", "seed": 3})
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 240
        while (state := http.get(f"/generate/{job.json()['id']}").json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, state
            time.sleep(0.5)  # polling a job: its progress is the thing read, not a synchronisation
        assert state["state"] == "done", state
        scene = state["result"]
    with world_page(server.url, f"scene={scene['id']}&player=world-scene", silence) as (page, _, problems):
        drawn = page.evaluate("window.llmasos.layout")
        assert [p["name"] for p in drawn["places"]] == [p["name"] for p in scene["places"]]
        assert drawn["from"] == f"scene:{scene['id']}" and problems == []
        page.screenshot(path=str(_artifact("world-scene.png", tmp_path)))
