"""The server in its own process, a real aiortc client: speech in, speech and events out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from llmasos.client import ClientError, EchoLoop, VoiceClient
from voice.audio import float_to_s16
from voice.audiofile import decode_file
from voice.wer import wer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

DATA = Path(__file__).resolve().parents[1] / "data" / "voice"


async def _greeted(client: VoiceClient) -> None:
    """The greeting has been spoken and the character listens."""
    await client.wait_for("reply", final=True, turn=1, timeout_s=120)
    await client.wait_for("state", state="listening", turn=1, timeout_s=120)


async def test_health_characters_and_page(server: object) -> None:
    url = server.url  # type: ignore[attr-defined]
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/healthz")).json()["status"] == "ok"
        characters = {c["id"]: c for c in (await http.get(f"{url}/characters")).json()["characters"]}
        assert {"blacksmith", "museum_guide", "quest_giver"} <= set(characters)
        actions = {a["name"]: a for a in characters["blacksmith"]["actions"]}
        assert actions["give_item"]["args"] == {  # the schema an action's args are validated against
            "type": "object",
            "properties": {
                "item": {"type": "string", "enum": ["iron_sword", "steel_sword", "horseshoe", "hammer"]},
                "target": {"type": "string", "maxLength": 64, "description": "who receives it, e.g. player"},
            },
            "required": ["item", "target"],
            "additionalProperties": False,
        }
        assert actions["nod"]["args"]["properties"] == {} and actions["nod"]["description"] == "Nod in agreement."
        rooms = {r["id"]: r for r in (await http.get(f"{url}/rooms")).json()["rooms"]}
        assert rooms["tavern"] == {
            "id": "tavern",
            "name": "The Sleeping Fox",
            "characters": ["innkeeper", "blacksmith"],
        }
        page = await http.get(f"{url}/")
        assert page.status_code == 200 and "LLMasOS" in page.text
        assert (await http.get(f"{url}/static/app.js")).status_code == 200


async def test_spoken_question_gets_a_spoken_answer(server: object, speak: Callable[[str], np.ndarray]) -> None:
    async with await VoiceClient.connect(server.url, character="blacksmith", player="e2e-speech") as client:  # type: ignore[attr-defined]
        (_, session) = await client.wait_for("session", timeout_s=30)
        assert session["character"] == "blacksmith"
        await _greeted(client)
        assert client.received.loud_seconds() > 1.0  # the greeting was heard

        question = "Do you have any swords for sale?"
        spoken_at = await client.say(speak(question))
        _, transcript = await client.wait_for("transcript", final=True, since=spoken_at - 5, timeout_s=60)
        assert wer(question, transcript["text"]) <= 0.3, transcript["text"]
        _, reply = await client.wait_for("reply", final=True, since=spoken_at, timeout_s=120)
        assert reply["text"].strip()
        first_voice = client.received.first_loud_after(spoken_at)
        assert first_voice is not None  # the answer was heard at the client
        states = [m["state"] for m in client.of_type("state", since=spoken_at)]
        assert states[:2] == ["thinking", "speaking"]
        await client.wait_for("state", state="listening", turn=reply["turn"], timeout_s=60)
        _, metrics = await client.wait_for("metrics", turn=reply["turn"], timeout_s=30)
        for stage in ("speech_end", "endpoint", "asr_final", "recall_done", "tts_first_audio"):
            assert stage in metrics["timeline_ms"]


async def test_a_spoken_request_gets_its_action_and_the_voice_its_visemes(
    server: object, speak: Callable[[str], np.ndarray]
) -> None:
    """The packaged model writes no action markup: the action chooser performs what was asked, on playback."""
    async with await VoiceClient.connect(server.url, character="blacksmith", player="e2e-wave", greet=False) as client:  # type: ignore[attr-defined]
        await client.wait_for("state", state="listening", timeout_s=60)
        spoken_at = await client.say(speak("Could you hand me the hammer?"))
        _, heard = await client.wait_for("transcript", final=True, since=spoken_at - 5, timeout_s=120)
        assert "hammer" in heard["text"].lower(), heard["text"]  # (the speech recognition is not under test)
        try:
            _, action = await client.wait_for("action", since=spoken_at, timeout_s=120)
        except TimeoutError:
            seen = [m for _, m in client.events if m.get("type") in ("transcript", "reply", "state", "error")]
            pytest.fail(f"no action for {heard['text']!r}; the client saw {seen[-30:]}")
        assert (action["name"], action["args"]) == ("give_item", {"item": "hammer", "target": "player"})
        assert action["at_ms"] < 100  # at the first word: performed as the character starts to speak
        _, reply = await client.wait_for("reply", final=True, turn=action["turn"], timeout_s=120)
        visemes = [m for m in client.of_type("viseme", since=spoken_at) if m["turn"] == action["turn"]]
        assert visemes and len(visemes) == len([m for m in client.of_type("words") if m["turn"] == action["turn"]])
        shapes = {v for m in visemes for _, v in m["visemes"]}
        assert "sil" in shapes and shapes & {"aa", "E", "IH", "OH", "OU"}  # the mouth opens and closes
        assert len(client.of_type("action", since=spoken_at)) == 1  # once, however the model wrote its reply


async def test_human_speech_clip(server: object) -> None:
    pcm = float_to_s16(decode_file(DATA / "jfk.flac", 48_000))
    async with await VoiceClient.connect(server.url, character="museum_guide", player="e2e-jfk") as client:  # type: ignore[attr-defined]
        await _greeted(client)
        await client.say(pcm)
        said = (DATA / "jfk.txt").read_text()

        def heard() -> str:
            return " ".join(m["text"] for m in client.of_type("transcript") if m["final"])

        # The speaker pauses after "Americans", "ask not" and "for you": the endpointer ends turns there, and
        # the character starts to answer each before the next. Every word must be heard, in one turn or several
        # (a word misheard, "Ask not!" as "'s not", is the recogniser's: at most 2 errors in 22 words; a piece of
        # the clip lost is 4 or more), and the last of them answered.
        try:
            await client.wait_for("transcript", final=True, where=lambda _: wer(said, heard()) <= 0.1, timeout_s=120)
        except TimeoutError:
            pytest.fail(f"not all of the clip was heard: {heard()!r}")
        last = [m for m in client.of_type("transcript") if m["final"]][-1]
        await client.wait_for("reply", final=True, turn=last["turn"], timeout_s=120)


async def test_typed_text_is_answered_like_speech(server: object) -> None:
    async with await VoiceClient.connect(server.url, character="quest_giver", player="e2e-text") as client:  # type: ignore[attr-defined]
        await _greeted(client)
        before = client.received.frames[-1][0]
        client.send_text("Hello! Do you have a quest for me?")
        _, reply = await client.wait_for("reply", final=True, turn=2, timeout_s=120)
        assert reply["text"].strip()
        assert client.received.first_loud_after(before) is not None
        client.send("{not json")
        _, error = await client.wait_for("error", timeout_s=30)
        assert error["code"] == "bad_json"
        client.send({"type": "ping", "id": "p1"})
        await client.wait_for("pong", id="p1", timeout_s=30)  # the session goes on


async def test_bad_offers_get_json_errors(server: object) -> None:
    url = server.url  # type: ignore[attr-defined]
    async with httpx.AsyncClient() as http:
        res = await http.post(f"{url}/rtc/offer", json={"sdp": "v=0", "type": "offer", "character": "x", "player": "p"})
        assert res.status_code == 404 and res.json()["error"]["code"] == "unknown_character"
        res = await http.post(
            f"{url}/rtc/offer", json={"sdp": "garbage", "type": "offer", "character": "blacksmith", "player": "p"}
        )
        assert res.status_code == 400 and res.json()["error"]["code"] == "bad_sdp"
        res = await http.post(f"{url}/rtc/offer", content=b"{", headers={"content-type": "application/json"})
        assert res.status_code == 422 and res.json()["error"]["code"] == "invalid_request"
    with pytest.raises(ClientError) as info:
        await VoiceClient.connect(url, character="nobody", player="p")
    assert info.value.code == "unknown_character"


async def test_barge_in_stops_the_voice_and_keeps_what_was_heard(
    scripted_server: object, scripted_llm: object, speak: Callable[[str], np.ndarray]
) -> None:
    url = scripted_server.url  # type: ignore[attr-defined]
    interruption = speak("Wait, stop please.")
    async with await VoiceClient.connect(url, character="blacksmith", player="e2e-barge") as client:
        await _greeted(client)
        client.send_text("Tell me a story about your forge.")
        start, _ = await client.wait_for("state", state="speaking", turn=2, timeout_s=60)
        await client.wait_loud(2.5, since=start)  # let the story be heard for a while
        await client.say(interruption)
        interrupted_at, interrupted = await client.wait_for("interrupted", turn=2, timeout_s=30)
        heard = interrupted["heard"]
        story = scripted_llm.replies["story"]  # type: ignore[attr-defined]
        assert heard and len(heard) < len(story) / 2
        assert story.replace("[wave target=player] ", "").startswith(heard)

        # the voice stops: nothing loud arrives after the interruption until the next reply speaks
        # the interruption's turn: the end-of-turn model may end one at "Wait," and the player going on carries
        # it into the turn of "stop please" (answered together)
        _, answered = await client.wait_for(
            "transcript", final=True, timeout_s=60, where=lambda m: "stop" in m["text"].lower()
        )
        next_turn = answered["turn"]
        next_start, _ = await client.wait_for("state", state="speaking", turn=next_turn, timeout_s=60)
        late = [at for at, level in client.received.frames if interrupted_at + 0.4 < at < next_start and level > 300]
        assert late == []

        actions = [m["name"] for m in client.of_type("action")]
        assert "wave" in actions  # played, so sent
        assert "nod" not in actions  # never played, so never sent
        await client.wait_for("reply", final=True, turn=next_turn, timeout_s=60)

    # the history the model sees next holds only what was heard
    last = scripted_llm.requests[-1]["messages"]  # type: ignore[attr-defined]
    said = [m["content"] for m in last if m["role"] == "assistant"]
    assert heard in said
    assert not any("never once gone out" in text for text in said)


async def test_a_backchannel_holds_the_voice_and_it_plays_on_to_the_end(
    scripted_server: object, scripted_llm: object, speak: Callable[[str], np.ndarray]
) -> None:
    """The player says "Yeah." while the story plays (endpoint.pause_on_speech, on by default): the voice holds
    at once (state paused), plays on from where it held once the words are known to be a backchannel (speaking
    again, in the same turn), and the whole story is heard; "Yeah." is nobody's turn."""
    url = scripted_server.url  # type: ignore[attr-defined]
    async with await VoiceClient.connect(url, character="blacksmith", player="e2e-backchannel") as client:
        await _greeted(client)
        client.send_text("Tell me a story about your forge.")
        start, _ = await client.wait_for("state", state="speaking", turn=2, timeout_s=60)
        await client.wait_loud(2.0, since=start)
        said = time.monotonic()
        await client.say(speak("Yeah."))
        await client.wait_for("state", state="paused", turn=2, since=said, timeout_s=30)
        _, heard = await client.wait_for("transcript", final=True, since=said, timeout_s=30)
        assert "yeah" in heard["text"].lower() and heard.get("turn") is None, heard  # told, answered by nobody
        resumed, _ = await client.wait_for("state", state="speaking", turn=2, since=said, timeout_s=30)
        await client.wait_for("state", state="listening", turn=2, timeout_s=120)

        assert client.of_type("interrupted") == []
        assert client.received.loud_seconds(resumed) > 5.0  # it went on, and not only the buffered tail
        assert "nod" in [m["name"] for m in client.of_type("action")]  # the story's last action: played
        assert [m["turn"] for m in client.of_type("state", since=said) if m["turn"] != 2] == []
        client.send_text("And what did your father say?")
        await client.wait_for("reply", final=True, turn=3, timeout_s=60)

    told = [m["content"] for m in scripted_llm.requests[-1]["messages"] if m["role"] == "assistant"]  # type: ignore[attr-defined]
    assert any("never once gone out" in text for text in told), told  # all of it was heard, and is remembered


async def test_its_own_voice_coming_back_is_neither_a_barge_in_nor_a_turn(
    scripted_server: object, speak: Callable[[str], np.ndarray]
) -> None:
    """A client that plays the reply into its own microphone (a headset without echo cancellation: 100 ms
    later, 6 dB quieter, with noise): ten replies are heard to their end and none is taken for the player's
    words, while the player talking over a reply still stops it."""
    url = scripted_server.url  # type: ignore[attr-defined]
    async with await VoiceClient.connect(url, character="blacksmith", player="e2e-echo", echo=EchoLoop()) as client:
        await _greeted(client)
        for n in range(10):
            turn = n + 2
            client.send_text("What is the weather like?")
            await client.wait_for("state", state="speaking", turn=turn, timeout_s=60)
            await client.wait_for("state", state="listening", turn=turn, timeout_s=60)
        interrupted = client.of_type("interrupted")
        heard = [m["text"] for m in client.of_type("transcript") if m["final"]]
        assert interrupted == [] and heard == [], (interrupted, heard)
        held = [m for m in client.of_type("state") if m["state"] == "paused"]
        assert held == [], held  # nor does it hold the reply for a moment
        replies = [m for m in client.of_type("reply") if m["final"] and m["turn"] > 1]
        assert len(replies) == 10 and all("nightfall" in m["text"] for m in replies)

        client.send_text("Tell me a story about your forge.")
        start, speaking = await client.wait_for("state", state="speaking", timeout_s=60, where=lambda m: m["turn"] > 11)
        await client.wait_loud(2.0, since=start)
        await client.say(speak("Wait, stop please."))
        _, stopped = await client.wait_for("interrupted", turn=speaking["turn"], timeout_s=30)
        assert stopped["heard"] and "never once gone out" not in stopped["heard"]
