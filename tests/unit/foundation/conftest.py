from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LLMASOS_* variable from the machine, and a working directory without an llmasos.toml."""
    for key in list(os.environ):
        if key.startswith("LLMASOS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
