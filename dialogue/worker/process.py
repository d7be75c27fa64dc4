"""The LLM worker process: ``python -m dialogue.worker.process MODE --engine E ...``. Only this process loads
the model (llama.cpp, or transformers + torch).

    serve    load the engine and serve requests on a Unix socket (dialogue.worker.protocol) until SIGTERM;
             when ready, one JSON line {"pid", "variant", "features"} is written to --ready-fd
    probe    llama.cpp: load a CPU variant and the model, compute a prompt and a few tokens, print llama.cpp's
             system info as JSON: exit 0 proves the variant runs here (a SIGILL or SIGSEGV proves it does not)
    prepare  llama.cpp: re-encode the model (e.g. Q4_1 -> Q8_0) if the target is missing

A native crash ends this process only; the supervisor (dialogue.worker.supervisor) restarts it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from dialogue.hf import engine as hf_engine
from dialogue.llamacpp.engine import Engine, EngineOptions, reencode, system_info
from dialogue.worker.pool import Halted, PooledEngine, Preempted
from dialogue.worker.protocol import MAX_LINE, Failure, Info, Reply, Request, encode_reply

log = logging.getLogger("dialogue.worker.process")


async def _handle(engine: PooledEngine, info: Info, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # cancelled at shutdown: nobody awaits a connection's task
        await _serve_connection(engine, info, reader, writer)


async def _serve_connection(
    engine: PooledEngine, info: Info, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    loop = asyncio.get_running_loop()
    try:
        line = await reader.readline()
        if not line:
            return
        try:
            body = json.loads(line)
            if body.get("op") == "info":
                writer.write(encode_reply(Info(**{**info.__dict__, "busy": engine.pool.busy()})))
                return
            request = Request.decode(body)
        except ValueError as exc:
            writer.write(encode_reply(Failure("bad_request", str(exc))))
            return
        queue: asyncio.Queue[Reply | None] = asyncio.Queue()
        halt = threading.Event()

        def put(item: Reply | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                for item in engine.generate(request, halt):
                    put(item)
            except Halted:
                pass
            except Preempted as exc:
                put(Failure("preempted", str(exc)))
            except ValueError as exc:  # e.g. a prompt longer than the context
                put(Failure("bad_request", str(exc)))
            except Exception as exc:
                log.exception("generation failed")
                put(Failure("failed", f"{type(exc).__name__}: {exc}"))
            finally:
                put(None)

        thread = threading.Thread(target=work, name="llm-generate", daemon=True)
        thread.start()
        hangup = asyncio.ensure_future(reader.read(1))  # the client hangs up to stop the request
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                item = getter.result()
                if item is None:
                    break
                writer.write(encode_reply(item))
                await writer.drain()
        finally:
            halt.set()
            engine.pool.poke()
            hangup.cancel()
            await asyncio.to_thread(thread.join)
    except (ConnectionError, BrokenPipeError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            await writer.drain()
        writer.close()


def _die_with_parent() -> None:
    """The worker never outlives the process that started it (a server killed with SIGKILL, a CLI that
    exited without stopping it): a thread sees the parent change (the orphan is adopted) and exits. Not
    PR_SET_PDEATHSIG: it fires when the parent's *thread* that started the worker ends, and the supervisor
    starts it from short-lived threads."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


async def _serve(args: argparse.Namespace) -> None:
    _die_with_parent()
    engine, features = await asyncio.to_thread(_load, args)
    info = Info(
        pid=os.getpid(),
        model=Path(args.model).name,
        contexts=len(engine.pool.slots),
        busy=0,
        variant=args.variant_name,
        features=features,
        extra={"engine": args.engine},
    )
    socket_path = Path(args.socket)
    socket_path.unlink(missing_ok=True)  # noqa: ASYNC240 (a local file, before serving)
    server = await asyncio.start_unix_server(
        lambda r, w: _handle(engine, info, r, w), path=str(socket_path), limit=MAX_LINE
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_fd is not None:
        with os.fdopen(args.ready_fd, "w") as ready:
            ready.write(json.dumps({"pid": info.pid, "variant": info.variant, "features": info.features}) + "\n")
    async with server:
        await stop.wait()
    server.close()
    socket_path.unlink(missing_ok=True)  # noqa: ASYNC240 (a local file, after serving)


def _load(args: argparse.Namespace) -> tuple[PooledEngine, str]:
    """The engine ``--engine`` names, loaded, and a line that says what it runs with."""
    if args.engine == "transformers":
        engine = hf_engine.Engine(
            hf_engine.EngineOptions(
                path=Path(args.model),
                device=args.device,
                threads=args.threads,
                contexts=args.contexts,
                cache_dir=Path(args.convert_cache) if args.convert_cache else None,
            )
        )
        return engine, engine.describe()
    return Engine(_engine_options(args)), system_info()


def _engine_options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions(
        path=Path(args.model),
        threads=args.threads,
        context=args.context,
        contexts=args.contexts,
        halt_batch=args.halt_batch,
        variant=Path(args.variant) if args.variant else None,
    )


def _probe(args: argparse.Namespace) -> None:
    options = _engine_options(args)
    engine = Engine(EngineOptions(options.path, options.threads, 512, 1, 32, options.variant))
    words = " ".join(f"word{i}" for i in range(60))  # enough tokens for the batched (matrix) kernels
    request = Request(messages=(("system", "Repeat the words."), ("user", words)), max_tokens=8, temperature=0.0)
    pieces = [p for p in engine.generate(request, threading.Event()) if isinstance(p, str)]
    engine.close()
    print(json.dumps({"ok": True, "pieces": len(pieces), "features": system_info()}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dialogue.worker.process")
    parser.add_argument("mode", choices=["serve", "probe", "prepare"])
    parser.add_argument("--engine", choices=["llamacpp", "transformers"], default="llamacpp")
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="transformers")
    parser.add_argument("--convert-cache", default="", help="transformers: where a GGUF's converted copy is kept")
    parser.add_argument("--variant", default="")
    parser.add_argument("--variant-name", default=None)
    parser.add_argument("--socket", default="")
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--contexts", type=int, default=2)
    parser.add_argument("--halt-batch", type=int, default=64)
    parser.add_argument("--source", default="", help="prepare: the file to re-encode")
    parser.add_argument("--quant", default="q8_0", help="prepare: q8_0 or f16")
    parser.add_argument("--log-level", choices=["debug", "warning"], default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="llm worker: %(message)s", stream=sys.stderr)
    if args.mode != "serve" and args.engine != "llamacpp":
        parser.error(f"{args.mode} is a llama.cpp step")
    if args.mode == "prepare":
        reencode(Path(args.source), Path(args.model), args.quant, args.threads)
    elif args.mode == "probe":
        _probe(args)
    else:
        try:
            asyncio.run(_serve(args))
        except hf_engine.LoadError as exc:  # one line the supervisor passes on, not a traceback
            print(f"llm worker: {exc}", file=sys.stderr, flush=True)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
