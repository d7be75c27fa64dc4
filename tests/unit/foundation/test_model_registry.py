from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from llmasos.errors import ModelChecksumError, ModelError, ModelMissingError
from llmasos.models import DEFAULTS, REGISTRY, ModelFile, ModelSpec, ModelStore, Role, Source, get_spec, resolve

pytestmark = pytest.mark.unit


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed-looking package `fake_weights_pkg` with two weight files."""
    root = tmp_path / "site"
    pkg = root / "fake_weights_pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "model.bin").write_bytes(b"weights" * 1000)
    (pkg / "data" / "part1").write_bytes(b"A" * 5000)
    (pkg / "data" / "part2").write_bytes(b"B" * 3000)
    monkeypatch.syspath_prepend(str(root))
    return pkg


def _in_place_spec() -> ModelSpec:
    data = b"weights" * 1000
    return ModelSpec(
        name="fake-model",
        role=Role.TTS,
        requirement="fake-weights-pkg==1.0",
        description="",
        license="MIT",
        layout="package",
        files=(ModelFile("model.bin", _sha(data), (Source("fake_weights_pkg", "data/model.bin", _sha(data)),)),),
        entry="model.bin",
    )


def _assembled_spec() -> ModelSpec:
    p1, p2 = b"A" * 5000, b"B" * 3000
    return ModelSpec(
        name="fake-split",
        role=Role.ASR,
        requirement="fake-weights-pkg==1.0",
        description="",
        license="MIT",
        layout="assembled",
        files=(
            ModelFile(
                "model.bin",
                _sha(p1 + p2),
                (
                    Source("fake_weights_pkg", "data/part1", _sha(p1)),
                    Source("fake_weights_pkg", "data/part2", _sha(p2)),
                ),
            ),
        ),
    )


def test_in_place_model_verifies(fake_pkg: Path, data_dir: Path) -> None:
    verified = ModelStore(data_dir).verify(_in_place_spec())
    assert verified.path == fake_pkg / "data" / "model.bin"
    assert verified.directory == fake_pkg / "data"
    assert verified.hashes == (("model.bin", _sha(b"weights" * 1000)),)


def test_corrupt_file_is_named_with_the_model(fake_pkg: Path, data_dir: Path) -> None:
    (fake_pkg / "data" / "model.bin").write_bytes(b"weightz" * 1000)
    with pytest.raises(ModelChecksumError) as info:
        ModelStore(data_dir).verify(_in_place_spec())
    assert info.value.model == "fake-model"
    message = str(info.value)
    assert "'fake-model'" in message and "checksum mismatch" in message
    assert "pip install --force-reinstall --no-deps fake-weights-pkg==1.0" in message


def test_missing_package_names_what_to_install(data_dir: Path) -> None:
    spec = _in_place_spec()
    with pytest.raises(ModelMissingError, match=r"pip install fake-weights-pkg==1\.0"):
        ModelStore(data_dir).verify(spec)
    assert ModelStore(data_dir).status(spec) == "missing"


def test_missing_file_in_installed_package(fake_pkg: Path, data_dir: Path) -> None:
    (fake_pkg / "data" / "model.bin").unlink()
    with pytest.raises(ModelMissingError, match="is missing from package fake-weights-pkg"):
        ModelStore(data_dir).verify(_in_place_spec())


def test_split_model_is_assembled_once_and_repaired(fake_pkg: Path, data_dir: Path) -> None:
    store = ModelStore(data_dir)
    spec = _assembled_spec()
    assert store.status(spec) == "not assembled"
    verified = store.verify(spec)
    target = data_dir / "models" / "fake-split" / "model.bin"
    assert verified.directory == target.parent
    assert target.read_bytes() == b"A" * 5000 + b"B" * 3000
    assert store.status(spec) == "installed"

    target.write_bytes(b"A" * 4999 + b"X" + b"B" * 3000)  # same size, corrupt: rebuilt from the parts
    store.verify(spec)
    assert target.read_bytes() == b"A" * 5000 + b"B" * 3000
    assert [p.name for p in target.parent.iterdir()] == ["model.bin"]  # no temporary files left


def test_corrupt_part_refuses_to_assemble(fake_pkg: Path, data_dir: Path) -> None:
    (fake_pkg / "data" / "part2").write_bytes(b"C" * 3000)
    with pytest.raises(ModelChecksumError, match="part2"):
        ModelStore(data_dir).verify(_assembled_spec())
    assert not (data_dir / "models" / "fake-split" / "model.bin").exists()


def test_user_directory_wins(tmp_path: Path, data_dir: Path) -> None:
    mine = tmp_path / "my-whisper"
    mine.mkdir()
    assert resolve(ModelStore(data_dir), Role.ASR, None, mine) == mine
    with pytest.raises(ModelMissingError, match="does not exist"):
        resolve(ModelStore(data_dir), Role.ASR, None, tmp_path / "nope")


def test_registry_is_complete() -> None:
    names = [s.name for s in REGISTRY]
    assert len(names) == len(set(names))
    assert set(DEFAULTS) == set(Role)
    for role, name in DEFAULTS.items():
        assert get_spec(name).role == role
    for spec in REGISTRY:
        for f in spec.files:
            assert len(f.sha256) == 64 and all(len(s.sha256) == 64 for s in f.sources)
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        get_spec("nope")
