"""One typed settings tree: defaults < TOML file < ``LLMASOS_*`` environment variables.

The TOML file is ``--config PATH``, else ``$LLMASOS_CONFIG``, else ``./llmasos.toml`` when it exists.
Environment variables address nested fields with ``__``: ``LLMASOS_SERVER__PORT=9000``,
``LLMASOS_ASR__MODEL=base``. Unknown keys are errors, so a typo never goes unnoticed.

Each role's ``model_dir`` points that role at a model of the user's own instead of the packaged default
(a user's model is loaded as it is; only packaged models are checked against a known sha256).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from llmasos.errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmasos"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)


class ASRSettings(_Section):
    model: Literal["tiny.en", "base"] = "tiny.en"
    model_dir: Path | None = None
    device: Device = "auto"
    compute_type: str | None = None  # default: int8 on CPU, float16 on CUDA
    beam_size: int = Field(1, ge=1, le=10)
    cpu_threads: int = Field(0, ge=0)  # 0: one per core
    language: str | None = None  # None: the model decides (tiny.en is English only)
    partial_interval_ms: int = Field(600, ge=100)


class VADSettings(_Section):
    model_dir: Path | None = None
    threshold: float = Field(0.5, gt=0.0, lt=1.0)


class EndpointSettings(_Section):
    min_silence_ms: int = Field(500, ge=100, le=5000)
    pre_roll_ms: int = Field(300, ge=0, le=2000)
    min_speech_ms: int = Field(150, ge=0, le=5000)
    max_utterance_s: float = Field(20.0, ge=1.0, le=120.0)


class TTSSettings(_Section):
    voice: str = "joe"
    model_dir: Path | None = None
    device: Device = "auto"


class LLMSettings(_Section):
    backend: Literal["transformers", "openai", "llamacpp"] = "transformers"
    model_dir: Path | None = None
    device: Device = "auto"
    max_new_tokens: int = Field(96, ge=1, le=4096)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    # OpenAI-compatible endpoint (vLLM, llama.cpp server, ...). The key is read from the environment
    # variable named here, never from a file.
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(20.0, gt=0)


class EmbeddingsSettings(_Section):
    model_dir: Path | None = None
    device: Device = "auto"


class MemorySettings(_Section):
    chroma_url: str | None = None  # e.g. http://127.0.0.1:8001 for a `chroma run` server; None: embedded
    top_k: int = Field(4, ge=0, le=50)
    recall_budget_ms: int = Field(150, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LLMASOS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    characters_dir: Path | None = None  # None: the characters shipped with llmasos
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    server: ServerSettings = ServerSettings()
    asr: ASRSettings = ASRSettings()
    vad: VADSettings = VADSettings()
    endpoint: EndpointSettings = EndpointSettings()
    tts: TTSSettings = TTSSettings()
    llm: LLMSettings = LLMSettings()
    embeddings: EmbeddingsSettings = EmbeddingsSettings()
    memory: MemorySettings = MemorySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment wins over them.
        return (env_settings, init_settings)


def config_path(explicit: Path | None = None) -> Path | None:
    """The TOML file to read, or None."""
    if explicit is not None:
        return explicit
    env = os.environ.get("LLMASOS_CONFIG")
    if env:
        return Path(env)
    local = Path("llmasos.toml")
    return local if local.is_file() else None


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings tree. ``overrides`` (top-level sections as dicts) win over file and environment."""
    file = config_path(path)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    try:
        settings = Settings(**data)
        if overrides:
            merged = settings.model_dump()
            for key, value in overrides.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            settings = Settings.model_validate(merged)
    except ValidationError as exc:
        where = f" (file {file})" if file else ""
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid settings{where}: {problems}") from None
    return settings


def dump_toml(settings: Settings) -> str:
    """The effective settings as TOML (what `llmasos config` prints)."""
    data = settings.model_dump(mode="json")
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in scalars.items():
        lines.append(_toml_line(key, value))
    for name, section in sections.items():
        lines.append("")
        lines.append(f"[{name}]")
        for key, value in section.items():
            lines.append(_toml_line(key, value))
    return "\n".join(lines) + "\n"


def _toml_line(key: str, value: Any) -> str:
    if value is None:
        return f"# {key} = (unset)"
    if isinstance(value, bool):
        return f"{key} = {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{key} = {value}"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{key} = "{escaped}"'
