"""The transformers + torch engine, as it runs inside the worker process (dialogue.worker.process): CUDA in
bf16 when there is a GPU, else the CPU in fp32. Like llama.cpp, it lives behind the process boundary: a CUDA
error, an out-of-memory kill or a crash in a kernel ends the worker, never the server.

A GGUF file is dequantized into a regular torch model once (cached in ``cache_dir`` when given, so later
starts skip the conversion). Each request generates on its own thread and streams through
TextIteratorStreamer; between two tokens the stopping criterion asks the pool whether to stop (the client
hung up: barge-in; a request of a higher priority waits: ``Preempted``). There is no prefix cache: every
request computes its whole prompt (fast on a GPU; on a CPU llama.cpp is the engine to use).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dialogue.worker.pool import Chat, ContextPool, Halted, PooledEngine, Preempted, Slot
from dialogue.worker.protocol import Done, Request

log = logging.getLogger("dialogue.hf.engine")


@dataclass(frozen=True)
class EngineOptions:
    path: Path  # a .gguf file, or a transformers model directory
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch CPU threads; 0: one per core
    contexts: int = 1  # generations at once (more only pays on a GPU)
    cache_dir: Path | None = None  # where a GGUF's dequantized model is kept (key it by the file's sha256)


class LoadError(RuntimeError):
    """The model cannot be loaded (the message says why and what to do)."""


class Engine(PooledEngine):
    def __init__(self, options: EngineOptions, loaded: tuple[Any, Any, str] | None = None) -> None:
        """Loads the model (blocking); ``loaded``: a (model, tokenizer, device) already there instead."""
        import torch

        self.options = options
        self.model, self.tokenizer, self.device = loaded or _load(options)
        self.eos = _eos_ids(self.tokenizer, self.model)
        self.pool = ContextPool([Slot(None) for _ in range(max(1, options.contexts))])
        self._torch = torch

    def describe(self) -> str:
        """What it runs on, for /healthz and the doctor (the llama.cpp engine's system info line)."""
        torch = self._torch
        if self.device == "cuda":
            return f"transformers on CUDA ({torch.cuda.get_device_name(0)}), bf16, torch {torch.__version__}"
        return f"transformers on the CPU, fp32, {torch.get_num_threads()} threads, torch {torch.__version__}"

    def _run(
        self, context: Any, request: Request, chat: Chat, halt: threading.Event, reply: list[str], t0: float
    ) -> Iterator[str | Done]:
        if request.json_schema is not None:
            raise ValueError("the transformers engine has no constrained output (json_schema): use llama.cpp")
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        stop: list[BaseException] = []  # why the generation stopped early: Halted or Preempted

        engine = self

        class _Check(StoppingCriteria):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> bool:
                try:
                    engine.check(request, halt)
                except (Halted, Preempted) as exc:
                    stop.append(exc)
                    return True
                return False

        inputs = self.tokenizer.apply_chat_template(
            [{"role": r, "content": c} for r, c in chat],
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sample = request.temperature > 0
        params: dict[str, Any] = {
            **inputs,
            "max_new_tokens": request.max_tokens,
            "do_sample": sample,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Check()]),
            "pad_token_id": self.tokenizer.eos_token_id,
            "repetition_penalty": request.repeat_penalty,
        }
        if request.stop:
            params["stop_strings"], params["tokenizer"] = list(request.stop), self.tokenizer
        if sample:
            params["temperature"], params["top_p"] = request.temperature, 0.9
        if request.seed is not None:
            self._torch.manual_seed(request.seed)
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with self._torch.inference_mode():
                    out = self.model.generate(**params)
                result["tokens"] = int(out.shape[-1] - inputs["input_ids"].shape[-1])
                result["last"] = int(out[0, -1])
            except Exception as exc:  # raised in the request's thread below
                result["error"] = exc
                streamer.end()  # type: ignore[no-untyped-call]

        thread = threading.Thread(target=work, name="llm-generate-hf", daemon=True)
        thread.start()
        first_ms = 0.0
        try:
            for text in streamer:
                if text:
                    if not reply:
                        first_ms = (time.perf_counter() - t0) * 1000
                    reply.append(text)
                    yield text
        except BaseException:
            halt.set()  # the consumer went away: the criterion stops the generation at its next token
            raise
        finally:
            thread.join()
        if "error" in result:
            raise RuntimeError(f"generation failed: {result['error']}") from result["error"]
        if stop:
            raise stop[0]
        prompt = int(inputs["input_ids"].shape[-1])
        tokens = int(result.get("tokens", 0))
        finished = result.get("last") in self.eos
        yield Done(
            finish="length" if tokens >= request.max_tokens and not finished else "stop",
            input_tokens=prompt,
            output_tokens=tokens,
            first_ms=round(first_ms, 2),
            total_ms=round((time.perf_counter() - t0) * 1000, 2),
        )

    def close(self) -> None:
        self.pool.drain()


def _load(options: EngineOptions) -> tuple[Any, Any, str]:
    """The model, its tokenizer and the device it is on (blocking: seconds, more for a first conversion)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    cuda = options.device == "cuda" or (options.device == "auto" and torch.cuda.is_available())
    if options.device == "cuda" and not torch.cuda.is_available():
        raise LoadError("llm.device is 'cuda' but torch sees no CUDA device; set llm.device = 'cpu' or 'auto'")
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
        raise LoadError(f"cannot load the LLM from {path}: {exc}") from exc
    if cuda:
        model = model.to("cuda")
    model.eval()
    return model, tokenizer, "cuda" if cuda else "cpu"


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
        log.warning("converted LLM not cached (%s)", cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found
