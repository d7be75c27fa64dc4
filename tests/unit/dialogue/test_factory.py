"""Wiring dialogue/ from the settings (no model is loaded here)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from dialogue import Backend, BackendUnavailableError
from dialogue.backends.openai_compat import OpenAICompatChatModel
from dialogue.testing import ScriptedChatModel
from llmasos.dialogue_factory import (
    PACKAGED_CHARACTERS,
    backend_name,
    build_backend,
    build_manager,
    characters_dir,
    converted_cache,
    load_character,
    summariser,
)
from llmasos.errors import ConfigError
from llmasos.settings import Settings

pytestmark = pytest.mark.unit


def settings(tmp_path: Path, **llm: object) -> Settings:
    return Settings(data_dir=tmp_path, llm=llm)  # type: ignore[arg-type]


def test_openai_backend_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        build_backend(settings(tmp_path, backend="openai"))
    monkeypatch.setenv("MY_KEY", "k-123")
    backend = build_backend(
        settings(tmp_path, backend="openai", base_url="http://127.0.0.1:1/v1", model="m", api_key_env="MY_KEY")
    )
    assert backend.name == "openai" and backend.native_tools
    assert isinstance(backend.model, OpenAICompatChatModel)
    assert backend.model.model_name == "m" and backend.model.api_key == SecretStr("k-123")
    assert backend.model.max_tokens == 64
    plain = build_backend(settings(tmp_path, backend="openai", base_url="http://x/v1", native_tools=False))
    assert not plain.native_tools


def test_llamacpp_backend_without_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(BackendUnavailableError, match="llama-cpp-python, which is not installed"):
        build_backend(settings(tmp_path, backend="llamacpp", model_dir=gguf))


def test_auto_backend_is_llamacpp_on_cpu_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmasos.dialogue_factory as factory

    monkeypatch.setattr(factory, "_cuda", lambda: False)
    monkeypatch.setattr(factory, "llamacpp_available", lambda: True)
    assert backend_name(settings(tmp_path)) == "llamacpp"
    assert backend_name(settings(tmp_path, backend="transformers")) == "transformers"
    assert backend_name(settings(tmp_path, model_dir=tmp_path / "my-model.gguf")) == "llamacpp"
    assert backend_name(settings(tmp_path, model_dir=tmp_path / "hf-model")) == "transformers"
    monkeypatch.setattr(factory, "llamacpp_available", lambda: False)
    assert backend_name(settings(tmp_path)) == "transformers"  # without llama-cpp-python
    monkeypatch.setattr(factory, "llamacpp_available", lambda: True)
    monkeypatch.setattr(factory, "_cuda", lambda: True)
    assert backend_name(settings(tmp_path)) == "transformers"  # a GPU: transformers on CUDA
    assert backend_name(settings(tmp_path, device="cpu")) == "llamacpp"


def test_a_blocked_llama_cpp_is_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    from dialogue import llamacpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    assert not llamacpp.available()


def test_characters_dir_and_converted_cache(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert characters_dir(s) == PACKAGED_CHARACTERS
    assert load_character(s, "quest_giver").name == "Captain Mira"
    own = Settings(data_dir=tmp_path, characters_dir=tmp_path / "chars")
    assert characters_dir(own) == tmp_path / "chars"
    cache = converted_cache(s)
    assert cache is not None and cache.parent == tmp_path / "cache" / "llm" and "b179c9523d0e6a0f" in cache.name
    assert converted_cache(settings(tmp_path, model_dir=tmp_path)) is None
    assert converted_cache(settings(tmp_path, cache_converted=False)) is None


async def test_manager_options_and_summariser(tmp_path: Path) -> None:
    s = settings(tmp_path, history_turns=1, clause_min_words=50)
    model = ScriptedChatModel(
        scripts=[["A long reply, with a comma, that is not cut early. Done."], ["Ann likes tea."]]
    )
    backend = Backend("fake", model)
    manager = build_manager(s, backend, load_character(s, "blacksmith"))
    pieces = [e async for e in manager.reply("hi")]
    # the greeting waves (the action chooser, by default), then two sentences (no clause cut at 50 words), done
    assert [type(p).__name__ for p in pieces] == ["ReplyAction", "ReplySentence", "ReplySentence", "ReplyDone"]
    summary = await summariser(backend)(["player: I like tea", "Brom: Good."])
    assert summary == "Ann likes tea."
    assert model.calls[1][-1].text == "player: I like tea\nBrom: Good."


def test_the_action_chooser_is_the_one_configured(tmp_path: Path) -> None:
    from dialogue.choice import CueChooser, ModelChooser
    from llmasos.dialogue_factory import build_chooser

    plain, constrained = Backend("fake", ScriptedChatModel(scripts=[])), Backend("fake", ScriptedChatModel(scripts=[]))
    constrained = dataclasses.replace(constrained, structured_output=True)
    assert isinstance(build_chooser(settings(tmp_path), plain), CueChooser)
    assert isinstance(build_chooser(settings(tmp_path, action_choice="model"), constrained), ModelChooser)
    assert isinstance(build_chooser(settings(tmp_path, action_choice="model"), plain), CueChooser)  # no grammar
    assert build_chooser(settings(tmp_path, action_choice="markup"), plain) is None


async def test_a_preempted_summary_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmasos.dialogue_factory as factory
    from dialogue.errors import BackendPreemptedError

    class Busy(ScriptedChatModel):
        busy: int = 2
        seen: list[dict[str, object]] = []

        async def ainvoke(self, messages: object, config: object = None, **kwargs: object) -> object:  # type: ignore[override]
            self.seen.append(dict(kwargs))
            if self.busy:
                self.busy -= 1
                raise BackendPreemptedError("a turn is waiting")
            return await super().ainvoke(messages, config)  # type: ignore[arg-type]

    monkeypatch.setattr(factory, "PREEMPTED_BACKOFF_S", 0.0)
    model = Busy(scripts=[["Ann likes tea."]], seen=[])
    assert await summariser(Backend("llamacpp", model))(["player: I like tea"]) == "Ann likes tea."
    # idle work: it yields to turns and to the warm-ups that prepare them, and tries again
    assert model.seen == [{"background": True, "idle": True}] * 3

    stuck = Busy(scripts=[["never"]], seen=[], busy=100)
    with pytest.raises(BackendPreemptedError):
        await summariser(Backend("llamacpp", stuck))(["player: hi"])
