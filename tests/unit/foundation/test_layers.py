from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def _layering():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("layering", REPO / "tests" / "layering.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["layering"] = module
    spec.loader.exec_module(module)
    return module


layering = _layering()


def test_layers_do_not_import_each_other() -> None:
    violations = layering.check(REPO)
    assert violations == [], "\n".join(str(v) for v in violations)


def test_checker_finds_a_forbidden_import(tmp_path: Path) -> None:
    for layer in layering.LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    (tmp_path / "voice" / "ok.py").write_text("import numpy\nfrom voice import types\n")
    (tmp_path / "voice" / "bad.py").write_text("import os\nfrom memory.types import Memory\n")
    (tmp_path / "rtc" / "worse.py").write_text("def f():\n    import llmasos.settings\n")
    (tmp_path / "dialogue" / "relative.py").write_text("from . import types\n")

    violations = layering.check(tmp_path)

    found = {(str(v.file), v.line, v.imported) for v in violations}
    assert found == {("voice/bad.py", 2, "memory.types"), ("rtc/worse.py", 2, "llmasos.settings")}


def test_every_layer_package_exists() -> None:
    for layer in layering.LAYERS:
        assert (REPO / layer / "__init__.py").is_file(), layer
