"""The packaged SmolLM2 through both local backends (llama.cpp, the CPU default, and transformers): it streams,
replies are well-formed events, barge-in frees the model, and generation never blocks the event loop.

A 135M model follows a persona loosely: these tests check structure, not the quality of what it says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from dialogue import Backend, DialogueManager, ReplyAction, ReplyDone, ReplyEvent, ReplySentence
from dialogue.errors import BackendPreemptedError
from llmasos.dialogue_factory import build_backend, load_character
from llmasos.settings import Settings

pytestmark = pytest.mark.integration

MAX_NEW_TOKENS = 40


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("dialogue-data")
    return Settings(data_dir=Path(data), llm={"max_new_tokens": MAX_NEW_TOKENS, "temperature": 0.0})  # type: ignore[arg-type]


@pytest.fixture(scope="session", params=["llamacpp", "transformers"])
def backend(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Backend]:
    llm = settings.llm.model_copy(update={"backend": request.param})
    backend = build_backend(settings.model_copy(update={"llm": llm}))
    yield backend
    if backend.engine is not None:
        backend.engine.close()


async def test_the_packaged_model_streams_tokens(backend: Backend, request: pytest.FixtureRequest) -> None:
    assert backend.name == request.node.callspec.params["backend"] and backend.options["model"].endswith(".gguf")
    chunks = [
        c async for c in backend.model.astream([SystemMessage("You are a friendly blacksmith."), HumanMessage("Hi!")])
    ]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 3, texts  # many pieces, not one blob at the end
    assert "".join(texts).strip()
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert len(usage) == 1 and 0 < usage[0]["output_tokens"] <= MAX_NEW_TOKENS
    finish = [c.response_metadata.get("finish_reason") for c in chunks if c.response_metadata.get("finish_reason")]
    assert finish in (["stop"], ["length"])
    # the worker's client says what the process boundary added to the first piece (the bench reports it)
    hops = [c.response_metadata["worker_hop_ms"] for c in chunks if "worker_hop_ms" in c.response_metadata]
    assert len(hops) == 1 and isinstance(hops[0], float)


async def test_a_reply_is_a_stream_of_well_formed_events(backend: Backend, settings: Settings) -> None:
    character = load_character(settings, "blacksmith")
    manager = DialogueManager(backend, character)
    events: list[ReplyEvent] = [
        e async for e in manager.reply("Good morning! Do you sell swords?", memories=["The player is called Ann."])
    ]
    assert isinstance(events[-1], ReplyDone) and sum(isinstance(e, ReplyDone) for e in events) == 1
    done = events[-1]
    sentences = [e for e in events if isinstance(e, ReplySentence)]
    assert sentences and done.full_text.strip()
    for s in sentences:
        assert done.full_text[s.start_char : s.start_char + len(s.text)] == s.text
    for a in (e for e in events if isinstance(e, ReplyAction)):
        assert character.action(a.name) is not None and a.at_char <= len(done.full_text)
    for ch in "[]*":
        assert ch not in done.full_text
    assert manager.last_reply == done.full_text.strip()


async def test_barge_in_stops_generation_and_keeps_what_was_said(backend: Backend, settings: Settings) -> None:
    manager = DialogueManager(backend, load_character(settings, "museum_guide"))
    stream = manager.reply("Tell me everything about the dinosaurs, please.")
    first = await anext(stream)
    await stream.aclose()
    said = manager.last_reply
    assert isinstance(first, ReplySentence | ReplyAction)
    if isinstance(first, ReplySentence):
        assert said.startswith(first.text)
    # the model is free again at once: the next reply streams normally
    events = [e async for e in manager.reply("Thanks!")]
    assert isinstance(events[-1], ReplyDone)
    assert len(manager.history) == (4 if said else 3)


async def test_generation_runs_off_the_event_loop(backend: Backend, settings: Settings) -> None:
    manager = DialogueManager(backend, load_character(settings, "quest_giver"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    events = [e async for e in manager.reply("Any work for me?")]
    task.cancel()
    assert isinstance(events[-1], ReplyDone)
    assert ticks > len(events)  # the loop kept turning while the model generated


async def test_concurrent_replies_share_the_model_and_all_finish(backend: Backend, settings: Settings) -> None:
    character = load_character(settings, "blacksmith")
    managers = [DialogueManager(backend, character) for _ in range(3)]
    questions = ("Do you sell axes?", "Where is the mill?", "Seen any wolves?")
    results = await asyncio.gather(*(collect(m, q) for m, q in zip(managers, questions, strict=True)))
    for manager, events in zip(managers, results, strict=True):
        assert isinstance(events[-1], ReplyDone) and events[-1].full_text.strip()
        assert manager.last_reply == events[-1].full_text.strip()


async def collect(manager: DialogueManager, text: str) -> list[ReplyEvent]:
    return [e async for e in manager.reply(text)]


@pytest.mark.parametrize("backend", ["llamacpp"], indirect=True)  # one model shared by every conversation
async def test_a_background_summary_yields_to_a_turn(backend: Backend, settings: Settings) -> None:
    story = [SystemMessage("You are a storyteller."), HumanMessage("Tell me a very long story about a dragon.")]
    summary = backend.model.astream(story, background=True, max_new_tokens=400)
    first = await anext(summary)  # the background generation holds the model
    assert first.text
    turn = asyncio.create_task(collect(DialogueManager(backend, load_character(settings, "blacksmith")), "Hello!"))
    with pytest.raises(BackendPreemptedError):
        async for _ in summary:
            pass
    events = await turn
    assert isinstance(events[-1], ReplyDone) and events[-1].full_text.strip()


@pytest.mark.parametrize("backend", ["llamacpp"], indirect=True)
def test_the_packaged_weights_are_re_encoded_once_for_llama_cpp(backend: Backend, settings: Settings) -> None:
    assert backend.options["model"].endswith(".q8_0.gguf")
    (made,) = (settings.data_dir / "cache" / "llm").glob("*.q8_0.gguf")
    stamp = made.stat().st_mtime_ns
    again = build_backend(settings.model_copy(update={"llm": settings.llm.model_copy(update={"backend": "llamacpp"})}))
    try:
        assert again.options["model"] == made.name and made.stat().st_mtime_ns == stamp  # reused, not made again
    finally:
        assert again.engine is not None
        again.engine.close()
