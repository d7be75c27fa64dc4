"""The real packaged models, verified by the real CLI, with the network refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from llmasos.models import REGISTRY, package_dir

pytestmark = pytest.mark.integration


def test_verify_all_models_offline(cli_env: dict[str, str], llmasos_cmd: list[str]) -> None:
    out = subprocess.run([*llmasos_cmd, "models", "verify"], env=cli_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for spec in REGISTRY:
        assert f"ok   {spec.name} ({spec.role.value})" in out.stdout
        for f in spec.files:
            assert f"sha256 {f.sha256}  {f.name}" in out.stdout
    assert f"all {len(REGISTRY)} models verified" in out.stdout


def test_network_guard_is_active_in_subprocesses(cli_env: dict[str, str]) -> None:
    import sys

    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
        "except ConnectionRefusedError as e:\n"
        "    print('refused', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=cli_env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("refused network access is disabled")


def test_corrupt_model_fails_verify_naming_it(cli_env: dict[str, str], llmasos_cmd: list[str], tmp_path: Path) -> None:
    # Shadow the package that ships the VAD model with a copy whose model file has one byte flipped.
    original = package_dir("faster_whisper")
    assert original is not None
    shadow_root = tmp_path / "shadow"
    shutil.copytree(original, shadow_root / "faster_whisper")
    model = shadow_root / "faster_whisper" / "assets" / "silero_vad_v6.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    cli_env["PYTHONPATH"] = f"{shadow_root}:{cli_env['PYTHONPATH']}"

    out = subprocess.run([*llmasos_cmd, "models", "verify"], env=cli_env, capture_output=True, text=True)

    assert out.returncode == 1
    assert "FAIL silero-vad-v6: model 'silero-vad-v6' (vad): checksum mismatch" in out.stderr
    assert f"1 of {len(REGISTRY)} models failed verification" in out.stderr
    assert "ok   whisper-tiny.en" in out.stdout  # the others are still checked and reported


def test_models_list(cli_env: dict[str, str], llmasos_cmd: list[str]) -> None:
    out = subprocess.run([*llmasos_cmd, "models"], env=cli_env, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "ROLE", "DEFAULT", "STATUS"]
    for spec in REGISTRY:
        assert any(line.startswith(spec.name) for line in lines)
