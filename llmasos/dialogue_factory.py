"""Wiring dialogue/ from the settings: the characters directory, the LLM backend, the dialogue manager.

``build_backend`` loads the model (blocking: call it at start-up or in a thread); the backend is shared by
every conversation, and each conversation gets its own DialogueManager.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from langchain_core.messages import HumanMessage, SystemMessage

from dialogue import Backend, Character, DialogueManager, ManagerOptions, SplitterOptions, find
from dialogue.backends.openai_compat import OpenAICompatChatModel
from dialogue.choice import ActionChooser, CueChooser, ModelChooser
from dialogue.errors import BackendPreemptedError
from dialogue.llamacpp import available as llamacpp_available
from dialogue.worker import WorkerOptions, start_worker
from llmasos.activity import Activity, Yielded
from llmasos.errors import ConfigError
from llmasos.models import DEFAULTS, ModelStore, Role, get_spec, resolve
from llmasos.settings import Settings

log = logging.getLogger(__name__)

PACKAGED_CHARACTERS = Path(__file__).parent / "characters"
PACKAGED_ROOMS = Path(__file__).parent / "rooms"


def characters_dir(settings: Settings) -> Path:
    """``settings.characters_dir``, else the characters shipped with llmasos."""
    return settings.characters_dir or PACKAGED_CHARACTERS


def load_character(settings: Settings, character_id: str) -> Character:
    return find(characters_dir(settings), character_id)


def backend_name(settings: Settings) -> str:
    """The backend ``llm.backend`` stands for ("auto" resolved on this machine)."""
    llm = settings.llm
    if llm.backend != "auto":
        return llm.backend
    if llm.device == "cuda" or (llm.device == "auto" and _cuda()):
        return "transformers"  # (with llm.device "cuda" and no device, load_local says so)
    if llm.model_dir is not None and llm.model_dir.suffix != ".gguf":
        return "transformers"  # a transformers model directory
    return "llamacpp" if llamacpp_available() else "transformers"


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def build_backend(settings: Settings) -> Backend:
    llm = settings.llm
    name = backend_name(settings)
    if name == "openai":
        if not llm.base_url:
            raise ConfigError("llm.backend is 'openai' but llm.base_url is not set (e.g. http://127.0.0.1:8080/v1)")
        key = os.environ.get(llm.api_key_env)
        model = OpenAICompatChatModel(
            base_url=llm.base_url,
            model_name=llm.model or "default",
            api_key=key,
            max_tokens=llm.max_new_tokens,
            temperature=llm.temperature,
            timeout_s=llm.timeout_s,
        )
        return Backend(
            "openai", model, native_tools=llm.native_tools, options={"url": llm.base_url}, structured_output=True
        )
    path = resolve(ModelStore(settings.data_dir), Role.LLM, None, llm.model_dir)
    if name == "llamacpp":
        return _llamacpp(settings, path)
    return _transformers(settings, path)


def _transformers(settings: Settings, path: Path) -> Backend:
    """transformers + torch in the same supervised worker process as llama.cpp (a CUDA error or an OOM kill
    never takes the server down). No prefix cache and no constrained output: warm-ups are skipped and the
    action choice falls back to cues."""
    llm = settings.llm
    model = start_worker(
        WorkerOptions(
            model=path,
            engine="transformers",
            device=llm.device,
            threads=llm.threads,
            contexts=1,
            convert_cache=converted_cache(settings),
        ),
        max_new_tokens=llm.max_new_tokens,
        temperature=llm.temperature,
    )
    runs_on = model.status().get("runs_on") or ""
    device = "cuda" if "CUDA" in runs_on else "cpu"
    return Backend("transformers", model, options={"model": path.name, "device": device}, engine=model)


def _llamacpp(settings: Settings, path: Path) -> Backend:
    """llama.cpp in its supervised worker process (a native crash never takes the server down)."""
    llm = settings.llm
    source: Path | None = None
    if llm.model_dir is None and llm.llamacpp_weights != "packaged":
        stem = _packaged_llm_cache(settings)
        source, path = path, stem.with_name(f"{stem.name}.{llm.llamacpp_weights}.gguf")
    model = start_worker(
        WorkerOptions(
            model=path,
            source=source,
            quant=llm.llamacpp_weights,
            threads=llm.threads,
            contexts=llm.llamacpp_contexts,
            cpu_cache=settings.data_dir / "cache" / "llm" / f"cpu-variant-{llm.llamacpp_cpu}.json",
            cpu_variant=llm.llamacpp_cpu,
        ),
        max_new_tokens=llm.max_new_tokens,
        temperature=llm.temperature,
    )
    assert model.supervisor is not None
    variant = model.supervisor.choice.variant if model.supervisor.choice is not None else None
    options = {"model": path.name, "cpu": variant or "built-in"}
    return Backend("llamacpp", model, prefix_cache=True, options=options, engine=model, structured_output=True)


def converted_cache(settings: Settings) -> Path | None:
    """Where the packaged GGUF's dequantized copy is kept (keyed by its pinned sha256); None for a user model."""
    if settings.llm.model_dir is not None or not settings.llm.cache_converted:
        return None
    return _packaged_llm_cache(settings)


def _packaged_llm_cache(settings: Settings) -> Path:
    """Where copies derived from the packaged LLM file go: named by the file's pinned sha256."""
    spec = get_spec(DEFAULTS[Role.LLM])
    return settings.data_dir / "cache" / "llm" / f"{spec.name}-{spec.files[0].sha256[:16]}"


PREEMPTED_RETRIES = 6  # a summary preempted by conversation turns is tried again, later each time
PREEMPTED_BACKOFF_S = 5.0


def summariser(backend: Backend, activity: Activity | None = None) -> Callable[[list[str]], Awaitable[str]]:
    """A ``summarise(turns)`` coroutine on the LLM, for memory reflection (memory/ never imports dialogue/).
    With ``activity``, it runs only while no session is active and is tried again later when one becomes
    active (on a small machine a summary would slow the speech recognition of what a player says)."""

    async def summarise(turns: list[str]) -> str:
        messages = [
            SystemMessage(
                "Summarise what the player told you and what you told them in one or two short sentences. "
                "Keep names, facts and promises."
            ),
            HumanMessage("\n".join(turns)),
        ]

        # idle work: on an engine shared with the conversations (llama.cpp) it yields to any turn that needs the
        # model, and to the prompt warm-ups that prepare the next turn, and is tried again later; the other
        # backends ignore the flags
        async def ask() -> str:
            return (await backend.model.ainvoke(messages, background=True, idle=True)).text

        for attempt in range(PREEMPTED_RETRIES):
            try:
                return await (ask() if activity is None else activity.run(ask))
            except (BackendPreemptedError, Yielded):
                await asyncio.sleep(PREEMPTED_BACKOFF_S * (attempt + 1))
        raise BackendPreemptedError(f"the model was busy with conversations {PREEMPTED_RETRIES} times")

    return summarise


def manager_options(settings: Settings) -> ManagerOptions:
    return ManagerOptions(
        history_turns=settings.llm.history_turns,
        splitter=SplitterOptions(min_clause_words=settings.llm.clause_min_words),
    )


def build_chooser(settings: Settings, backend: Backend) -> ActionChooser | None:
    """The action chooser ``llm.action_choice`` names (None: only the actions the model writes or calls)."""
    choice = settings.llm.action_choice
    if choice == "model" and backend.structured_output:
        return ModelChooser(backend.model)
    if choice == "model":
        log.warning(
            "action choice by the model needs constrained output: cues instead", extra={"backend": backend.name}
        )
    return CueChooser() if choice != "markup" else None


def build_manager(settings: Settings, backend: Backend, character: Character) -> DialogueManager:
    """A new conversation's dialogue manager (cheap: the model is in ``backend``)."""
    return DialogueManager(backend, character, manager_options(settings), build_chooser(settings, backend))
