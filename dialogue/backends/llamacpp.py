"""llama.cpp (llama-cpp-python) as a LangChain chat model: an optional, fast CPU engine.

llama_cpp is imported only when a model is loaded; without it, BackendUnavailableError says what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from dialogue.backends.base import StreamingChatModel, role
from dialogue.errors import BackendUnavailableError

INSTALL_HINT = "pip install llama-cpp-python"


@dataclass(frozen=True)
class LlamaCppOptions:
    path: Path  # the .gguf file
    threads: int = 0  # 0: llama.cpp's default
    context: int = 2048
    max_new_tokens: int = 96
    temperature: float = 0.7


def load_llamacpp(options: LlamaCppOptions) -> LlamaCppChatModel:
    try:
        llama_cpp = importlib.import_module("llama_cpp")
    except ImportError:
        raise BackendUnavailableError(
            f"the llamacpp backend needs llama-cpp-python, which is not installed: {INSTALL_HINT} "
            "(it compiles llama.cpp), or set llm.backend to 'transformers'"
        ) from None
    llm = llama_cpp.Llama(
        model_path=str(options.path),
        n_ctx=options.context,
        n_threads=options.threads or None,
        verbose=False,
    )
    return LlamaCppChatModel(llm=llm, max_new_tokens=options.max_new_tokens, temperature=options.temperature)


class LlamaCppChatModel(StreamingChatModel):
    llm: Any
    max_new_tokens: int = 96
    temperature: float = 0.7

    @property
    def _llm_type(self) -> str:
        return "llama.cpp"

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        chat = [{"role": role(m), "content": m.text} for m in messages]
        for event in self.llm.create_chat_completion(
            messages=chat, stream=True, max_tokens=self.max_new_tokens, temperature=self.temperature, stop=stop
        ):
            delta = (event.get("choices") or [{}])[0].get("delta") or {}
            text = delta.get("content") or ""
            if text:
                if run_manager is not None:
                    run_manager.on_llm_new_token(text)
                yield ChatGenerationChunk(message=AIMessageChunk(content=text))
