"""`llmasos doctor`: what this machine gives the engines: the CPU features the OS enables, the llama.cpp build,
the CPU variant the LLM worker runs with (probed once per machine), the LLM worker's state."""

from __future__ import annotations

import argparse
from typing import Any

from dialogue.llamacpp import cpu
from llmasos.dialogue_factory import backend_name, build_backend
from llmasos.settings import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "doctor", help="the CPU features the engines run with, and the LLM worker's state"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = cpu.cpu_report()
    print(f"cpu            {report.model or 'unknown'}")
    reported = [f for f in cpu.USED_FLAGS if f in report.flags]
    print(f"cpu reports    {' '.join(reported) or '-'}")
    xcr0 = "unreadable" if report.xcr0 is None else hex(report.xcr0)
    amx = "granted" if report.amx_permitted else "not granted"
    print(f"os enables     {' '.join(f for f in reported if f in report.enabled) or '-'} (XCR0 {xcr0}; AMX {amx})")
    libraries = cpu.variant_libraries()
    if libraries:
        print(f"llama.cpp      portable build, {len(libraries)} CPU variants: {' '.join(sorted(libraries))}")
    elif cpu.library_dirs():
        print("llama.cpp      WARNING: a single-CPU build (no CPU variants): it may not run on another machine;")
        print("               reinstall it with `make install` (see the README)")
    else:
        print("llama.cpp      not installed")
    name = backend_name(settings)
    print(f"llm backend    {name}")
    backend = build_backend(settings)  # starts the worker as the server does (probes on first use)
    try:
        status = backend.engine.status() if backend.engine is not None else {}
        if status:
            print(f"llm worker     {status['state']}, pid {status['pid']}, restarts {status['restarts']}")
        choice = getattr(backend.model, "supervisor", None)
        choice = getattr(choice, "choice", None)
        if isinstance(choice, cpu.Choice):
            print(f"cpu variant    {choice.variant or 'built-in'}")
            for variant, outcome in choice.tried.items():
                print(f"               {variant:<15} {outcome}")
            print(f"runs with      {choice.features}")
        elif status.get("runs_on"):
            print(f"runs with      {status['runs_on']}")
    finally:
        if backend.engine is not None:
            backend.engine.close()
    return 0
