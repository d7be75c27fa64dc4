"""llama-cpp-python's own OpenAI-compatible server (``llama_cpp.server``) on a GGUF model, running the CPU
variant this package chose for the machine (``--variant``: a ggml CPU library; none: the built-in one)::

    python -m dialogue.llamacpp.openai_server --model M.gguf [--variant LIB] [--host H] [--port P]

The same server as ``python -m llama_cpp.server``, except that the CPU backend is the one that was proved to
run here (dialogue.llamacpp.cpu) rather than one ggml picks by CPUID. It serves ``/v1/chat/completions``
with streaming and ``response_format`` (``{"type": "json_object", "schema": ...}``): a server for the
``openai`` backend (``llm.base_url``), on this machine or another. Needs ``sse-starlette`` and
``starlette-context`` (``pip install 'llama-cpp-python[server]'`` brings them). Once it accepts requests it
prints ``ready URL`` on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from dialogue.llamacpp.engine import load_variant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dialogue.llamacpp.openai_server")
    parser.add_argument("--model", required=True, help="the .gguf file")
    parser.add_argument("--variant", default="", help="the ggml CPU variant library to load")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0, help="0: one per core")
    parser.add_argument("--alias", default="default", help="the model name clients ask for")
    args = parser.parse_args(argv)
    load_variant(Path(args.variant) if args.variant else None)
    try:
        server_app = importlib.import_module("llama_cpp.server.app")
        server_settings = importlib.import_module("llama_cpp.server.settings")
    except ImportError as exc:
        print(f"the OpenAI-compatible server needs llama-cpp-python's server extras: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    threads = args.threads or os.cpu_count() or 1
    model = server_settings.ModelSettings(
        model=args.model, model_alias=args.alias, n_ctx=args.context, n_threads=threads, n_threads_batch=threads,
        verbose=False,
    )  # fmt: skip
    server = server_settings.ServerSettings(host=args.host, port=args.port)
    app = server_app.create_app(server_settings=server, model_settings=[model])

    class _Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # one line on stdout once it accepts requests (for whoever waits for it)
                print(f"ready http://{args.host}:{args.port}/v1", flush=True)

    _Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
