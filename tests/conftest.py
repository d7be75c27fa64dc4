"""Suite-wide set-up: no network at run time, anywhere in the suite, and helpers for CLI subprocesses."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

NETGUARD = Path(__file__).parent / "netguard"
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(NETGUARD))
sys.path.insert(0, str(Path(__file__).parent))  # shared fakes: `from fakes import ...`

from tests_netguard_impl import install as _install_netguard  # noqa: E402

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
os.environ.update(OFFLINE_ENV)
_install_netguard()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh LLMasOS data directory."""
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def cli_env(data_dir: Path) -> Iterator[dict[str, str]]:
    """Environment for running `llmasos` as a subprocess: offline, network refused, data in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMASOS_")}
    env.update(OFFLINE_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(NETGUARD), str(REPO)])
    env["LLMASOS_DATA_DIR"] = str(data_dir)
    yield env


@pytest.fixture
def llmasos_cmd() -> list[str]:
    """The CLI as a subprocess command line, from the same interpreter as the tests."""
    return [sys.executable, "-m", "llmasos"]
