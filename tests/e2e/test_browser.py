"""The browser client in a real headless Chromium with a fake microphone playing a WAV file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from voice.audiofile import write_wav
from voice.wer import wer

pytestmark = pytest.mark.e2e

QUESTION = "Do you have any swords for sale?"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory, speak: Callable[[str], np.ndarray]) -> Path:
    """7 s of silence (the greeting plays), the question, then silence (Chromium loops the file)."""
    silence = np.zeros(48_000 * 7, dtype=np.int16)
    pcm = np.concatenate([silence, speak(QUESTION), silence, silence, silence])
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    write_wav(path, pcm, 48_000)
    return path


def test_browser_shows_the_transcript_and_plays_the_reply(
    server: object, mic_wav: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: `make test` installs it"
    from playwright.sync_api import sync_playwright

    url = f"{server.url}/?aec=0&character=blacksmith&player=browser&autoconnect=1"  # type: ignore[attr-defined]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*FLAGS, f"--use-file-for-fake-audio-capture={mic_wav}"]
        )
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("window.llmasos && window.llmasos.session !== null", timeout=60_000)
            page.wait_for_function("window.llmasos.transcripts.length > 0", timeout=120_000)
            shown = page.locator(".msg.user").first.inner_text()
            assert wer(QUESTION, shown) <= 0.3, shown
            # a reply to the question (turn 2 or later: turn 1 is the greeting) is shown and heard
            page.wait_for_function(
                "Object.keys(window.llmasos.replies).some(t => Number(t) >= 2) && window.llmasos.maxRemoteLevel > 0.01",
                timeout=120_000,
            )
            assert page.locator(".msg.character").count() >= 2
            assert page.locator("#state").inner_text() in {"listening", "thinking", "speaking"}
            assert not page.evaluate("window.llmasos.errors")
            page.wait_for_function("window.llmasos.metrics.length >= 2", timeout=120_000)
            page.screenshot(path=str(tmp_path / "client.png"), full_page=True)
        finally:
            browser.close()
