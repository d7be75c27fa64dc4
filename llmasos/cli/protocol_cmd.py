"""`llmasos protocol-schema`: write the data-channel protocol's JSON Schemas (for client authors)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from llmasos.settings import Settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "protocol-schema", help="write the data-channel JSON Schemas (server-to-client, client-to-server)"
    )
    p.add_argument("--out", type=Path, default=Path("docs/protocol"), help="folder to write into")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rtc.protocol import schemas

    args.out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        path = args.out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        print(path)
    return 0
