"""Local generation with transformers + torch as a LangChain chat model (CUDA bf16 when present, else CPU).

A GGUF file is dequantized into a regular torch model (cached in ``cache_dir`` when given, so later starts
skip the conversion). Generation runs in a worker thread and streams through
TextIteratorStreamer; closing the stream early (barge-in) stops generation at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from dialogue.backends.base import StreamingChatModel, role
from dialogue.errors import BackendError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModelOptions:
    path: Path  # a .gguf file, or a transformers model directory
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch CPU threads; 0: one per core
    max_new_tokens: int = 96
    temperature: float = 0.7
    cache_dir: Path | None = None  # where a GGUF's dequantized model is kept (key it by the file's sha256)


def load_local(options: LocalModelOptions) -> TransformersChatModel:
    """Load the model and tokenizer once (blocking: call it from a thread or at start-up)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
    if options.device == "cuda" and not torch.cuda.is_available():
        raise BackendError("llm.device is 'cuda' but torch sees no CUDA device; set llm.device = 'cpu' or 'auto'")
    if not cuda:
        torch.set_num_threads(options.threads or os.cpu_count() or 1)
    dtype = torch.bfloat16 if cuda else torch.float32
    path = options.path
    model: Any
    tokenizer: Any
    try:
        if path.is_file() and path.suffix == ".gguf":
            cache = options.cache_dir
            if cache is not None and (cache / "config.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(cache)
                model = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype)
            else:
                tokenizer, model = _from_gguf(path)
                if cache is not None:
                    _save_converted(model, tokenizer, cache)
                model = model.to(dtype)
        else:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise BackendError(f"cannot load the LLM from {path}: {exc}") from exc
    if cuda:
        model = model.to("cuda")
    model.eval()
    return TransformersChatModel(
        model=model,
        tokenizer=tokenizer,
        device="cuda" if cuda else "cpu",
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
    )


def _from_gguf(path: Path) -> tuple[Any, Any]:
    """Dequantize a GGUF file into a float32 transformers model (seconds: cache the result)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    checkpoint = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)  # type: ignore[no-untyped-call]
    model.load_state_dict(checkpoint["tensors"], strict=False)
    model.tie_weights()
    return tokenizer, model


def _save_converted(model: Any, tokenizer: Any, cache: Path) -> None:
    """Write the converted model beside, then rename into place: concurrent loaders never see half a cache."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, cache)
    except OSError:
        log.warning("converted LLM not cached", extra={"cache_dir": str(cache)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class TransformersChatModel(StreamingChatModel):
    model: Any
    tokenizer: Any
    device: str = "cpu"
    max_new_tokens: int = 96
    temperature: float = 0.7
    repetition_penalty: float = 1.2  # small models loop ("I am X. I am X. ...") without it

    @property
    def _llm_type(self) -> str:
        return "transformers"

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        return self._iterate(messages, threading.Event(), run_manager, kwargs)

    def _iterate(
        self,
        messages: list[BaseMessage],
        halt: threading.Event,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Generator[ChatGenerationChunk, None, None]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class _Halt(StoppingCriteria):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> bool:
                return halt.is_set()

        chat = [{"role": role(m), "content": m.text} for m in messages]
        inputs = self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        ).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sample = self.temperature > 0
        params: dict[str, Any] = {
            **inputs,
            "max_new_tokens": int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            "do_sample": sample,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Halt()]),
            "pad_token_id": self.tokenizer.eos_token_id,
            "repetition_penalty": self.repetition_penalty,
        }
        if sample:
            params["temperature"] = self.temperature
            params["top_p"] = 0.9
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                out = self.model.generate(**params)
                result["tokens"] = int(out.shape[-1] - inputs["input_ids"].shape[-1])
                result["last"] = int(out[0, -1])
            except Exception as exc:  # reported to the consumer below
                result["error"] = exc
                streamer.end()  # type: ignore[no-untyped-call]

        worker = threading.Thread(target=work, name="llm-generate", daemon=True)
        worker.start()
        try:
            for text in streamer:
                if text:
                    if run_manager is not None:
                        run_manager.on_llm_new_token(text)
                    yield ChatGenerationChunk(message=AIMessageChunk(content=text))
            worker.join()
            if "error" in result:
                raise BackendError(f"generation failed: {result['error']}") from result["error"]
            prompt_tokens = int(inputs["input_ids"].shape[-1])
            usage = {
                "input_tokens": prompt_tokens,
                "output_tokens": result.get("tokens", 0),
                "total_tokens": prompt_tokens + result.get("tokens", 0),
            }
            stopped = result.get("last") in _eos_ids(self.tokenizer, self.model) or halt.is_set()
            finish = "length" if result.get("tokens", 0) >= params["max_new_tokens"] and not stopped else "stop"
            final = AIMessageChunk(
                content="",
                usage_metadata=usage,  # type: ignore[arg-type]
                response_metadata={"finish_reason": finish},
            )
            yield ChatGenerationChunk(message=final)
        finally:
            halt.set()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # Every step of the blocking iterator runs in a thread; closing early stops the generation.
        halt = threading.Event()
        iterator = self._iterate(messages, halt, None, kwargs)
        done = object()
        try:
            while True:
                item = await asyncio.to_thread(next, iterator, done)
                if item is done:
                    break
                assert isinstance(item, ChatGenerationChunk)
                if run_manager is not None and item.text:
                    await run_manager.on_llm_new_token(item.text, chunk=item)
                yield item
        finally:
            halt.set()  # generation stops at its next token
            with contextlib.suppress(ValueError):  # still running in a worker thread: it ends by itself
                iterator.close()


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found
