"""`llmasos models`: list the packaged models; `llmasos models verify`: check every file's sha256."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmasos.errors import ModelError
from llmasos.models import DEFAULTS, REGISTRY, ModelStore, get_spec
from llmasos.settings import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("models", help="list the packaged models and their status")
    p.set_defaults(handler=run_list)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    v = msub.add_parser("verify", help="check every model file against its pinned sha256; non-zero on failure")
    v.add_argument("names", nargs="*", help="models to verify (default: all)")
    v.set_defaults(handler=run_verify)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    store = ModelStore(settings.data_dir)
    defaults = set(DEFAULTS.values())
    print(f"{'NAME':<24} {'ROLE':<11} {'DEFAULT':<8} {'STATUS':<14} PACKAGE")
    for spec in REGISTRY:
        mark = "yes" if spec.name in defaults else ""
        print(f"{spec.name:<24} {spec.role.value:<11} {mark:<8} {store.status(spec):<14} {spec.requirement}")
    print("\n`llmasos models verify` checks every file's sha256 (and assembles split models).")
    return 0


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    store = ModelStore(settings.data_dir)
    names = args.names or [s.name for s in REGISTRY]
    failures = 0
    for name in names:
        try:
            verified = store.verify(get_spec(name))
        except ModelError as exc:
            failures += 1
            print(f"FAIL {name}: {exc}", file=sys.stderr)
            continue
        print(f"ok   {name} ({verified.spec.role.value}) {verified.path}")
        for file_name, digest in verified.hashes:
            print(f"       sha256 {digest}  {file_name}")
    if failures:
        print(f"{failures} of {len(names)} models failed verification", file=sys.stderr)
        return 1
    print(f"all {len(names)} models verified")
    return 0
