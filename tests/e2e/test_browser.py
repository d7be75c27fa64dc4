"""The browser client in a real headless Chromium: the fake microphone plays silence (the file loops), and the
test speaks into what the page sends (?mic=inject, window.llmasos.say) once the page shows the greeting ended."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser import CHROMIUM, FLAGS

from voice.audiofile import write_wav
from voice.wer import wer

pytestmark = pytest.mark.e2e

QUESTION = "Do you have any swords for sale?"


@pytest.fixture(scope="module")
def silent_mic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone device captures: silence (without a file Chromium's fake device beeps)."""
    path = tmp_path_factory.mktemp("mic") / "silence.wav"
    write_wav(path, np.zeros(48_000, dtype=np.int16), 48_000)
    return path


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory, speak: Callable[[str], np.ndarray]) -> str:
    """The question, spoken with the packaged voice, as a base64 WAV for window.llmasos.say."""
    path = tmp_path_factory.mktemp("speech") / "question.wav"
    write_wav(path, speak(QUESTION), 48_000)
    return base64.b64encode(path.read_bytes()).decode("ascii")


@contextlib.contextmanager
def chromium_page(url: str, mic: Path) -> Iterator[Any]:
    """A page of headless Chromium at ``url``, its fake microphone capturing ``mic``; closed afterwards."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: `make test` installs it"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, f"--use-file-for-fake-audio-capture={mic}"])
        try:
            page = browser.new_page()
            page.goto(url)
            yield page
        finally:
            browser.close()


def _state_seen(state: str, turn: int) -> str:
    return f"window.llmasos.states.some(s => s.state === {state!r} && s.turn === {turn})"


def test_browser_shows_the_transcript_and_plays_the_reply(
    server: object, silent_mic: Path, question_wav: str, tmp_path: Path
) -> None:
    url = f"{server.url}/?aec=0&mic=inject&character=blacksmith&player=browser&autoconnect=1"  # type: ignore[attr-defined]
    with chromium_page(url, silent_mic) as page:
        page.wait_for_function("window.llmasos && window.llmasos.session !== null", timeout=60_000)
        # turn 1 is the greeting: the question is spoken once the page has been told it is over
        page.wait_for_function(_state_seen("listening", 1), timeout=120_000)
        assert page.evaluate("window.llmasos.levels[1]") > 0.01  # the greeting was heard
        assert page.evaluate("window.llmasos.transcripts") == []  # the microphone was silent until now
        page.evaluate("wav => window.llmasos.say(wav)", question_wav)  # returns once it has all been sent

        page.wait_for_function(_state_seen("listening", 2), timeout=120_000)  # the answer is over
        transcripts = page.evaluate("window.llmasos.transcripts")
        assert len(transcripts) == 1 and wer(QUESTION, transcripts[0]) <= 0.3, transcripts
        assert page.locator(".msg.user").all_inner_texts() == transcripts
        reply = page.evaluate("window.llmasos.replies[2]")
        assert reply and page.locator(".msg.character").nth(1).inner_text() == reply
        assert page.evaluate("window.llmasos.levels[2]") > 0.01, "the reply was shown but not heard"
        assert page.locator("#state").inner_text() == "listening"
        assert [m["turn"] for m in page.evaluate("window.llmasos.metrics")] == [1, 2]
        assert page.evaluate("window.llmasos.errors") == []
        page.screenshot(path=str(tmp_path / "client.png"), full_page=True)


def test_browser_joins_a_room_shows_who_is_there_and_focus_addresses_the_character_clicked(
    scripted_server: object, silent_mic: Path
) -> None:
    url = f"{scripted_server.url}/?aec=0&room=tavern&player=Ann&autoconnect=1"  # type: ignore[attr-defined]
    with chromium_page(url, silent_mic) as page:
        page.wait_for_function("window.llmasos.room && window.llmasos.room.event === 'joined'", timeout=60_000)
        people = page.locator("#people li").all_inner_texts()
        assert people == ["Hilda", "Brom Ironhand", "Ann (you)"], people
        page.locator("#c-blacksmith").click()  # face Brom
        assert page.locator("#c-blacksmith").get_attribute("class") == "character focused"
        page.fill("#text", "How much is a horseshoe?")
        page.click("#send")
        page.wait_for_function("window.llmasos.addressed.length > 0", timeout=60_000)
        addressed = page.evaluate("window.llmasos.addressed[0]")
        assert (addressed["character"], addressed["reason"]) == ("blacksmith", "focus")
        turn = addressed["turn"]
        page.wait_for_function(f"window.llmasos.replies[{turn}] !== undefined", timeout=60_000)
        assert "Brom Ironhand" in page.locator(".msg.character").last.get_attribute("data-name")
        assert "→ Brom Ironhand (focus)" in page.locator(".msg.user").last.inner_text()
        page.click("#hangup")  # leave the room


def test_browser_creates_a_character_on_the_real_model_and_talks_to_it(server: object, silent_mic: Path) -> None:
    url = f"{server.url}/?aec=0&player=ann"  # type: ignore[attr-defined]
    with chromium_page(url, silent_mic) as page:
        page.wait_for_function("document.querySelectorAll('#character option').length > 0", timeout=60_000)
        page.fill("#createprompt", "A cheerful baker in a mountain village who sells honey bread.")
        page.click("#create")
        page.wait_for_function("window.llmasos.created.length === 1 || window.llmasos.errors.length", timeout=180_000)
        assert page.evaluate("window.llmasos.errors") == []
        job = page.evaluate("window.llmasos.created[0]")
        assert job["state"] == "done" and job["saved"] == [f"{job['result']['id']}.json"]
        assert page.eval_on_selector("#character", "s => s.value") == job["result"]["id"]  # listed and chosen
        assert page.locator("#createstatus").inner_text().startswith("created character")
        page.click("#connect")
        page.wait_for_function(_state_seen("listening", 1), timeout=120_000)  # it greeted
        page.fill("#text", "Hello! What do you sell?")
        page.click("#send")
        page.wait_for_function("window.llmasos.replies[2] !== undefined", timeout=120_000)
        assert page.locator(".msg.character").last.get_attribute("data-name") == job["result"]["name"]
        assert page.evaluate("window.llmasos.errors") == []
        page.click("#hangup")
