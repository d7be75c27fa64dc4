"""One typed settings tree: defaults < TOML file < ``LLMASOS_*`` environment variables.

The TOML file is ``--config PATH``, else ``$LLMASOS_CONFIG``, else ``./llmasos.toml`` when it exists.
Environment variables address nested fields with ``__``: ``LLMASOS_SERVER__PORT=9000``,
``LLMASOS_ASR__MODEL=base``. Unknown keys are errors, so a typo never goes unnoticed.

Each role's ``model_dir`` points that role at a model of the user's own instead of the packaged default
(a user's model is loaded as it is; only packaged models are checked against a known sha256).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from llmasos.backchannel import BACKCHANNELS
from llmasos.errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "llmasos"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IceServerSettings(_Section):
    """A TURN (or STUN) server with credentials: ``{ urls = "turn:turn.example.org:3478", username = "u",
    credential = "p" }`` (``urls`` one URL or a list)."""

    urls: tuple[str, ...] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _schemes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        return value

    @property
    def turn(self) -> bool:
        """A TURN server (it has a ``turn:`` or ``turns:`` URL)."""
        return any(u.startswith(("turn:", "turns:")) for u in self.urls)

    @model_validator(mode="after")
    def _credentials(self) -> IceServerSettings:
        if self.turn and (self.username is None or self.credential is None):
            raise ValueError("a TURN server needs a username and a credential")
        return self


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # ICE servers handed to aiortc and to clients: "stun:stun.example.org:3478", or a TURN server with its
    # credentials, { urls = "turn:turn.example.org:3478", username = "u", credential = "p" }; empty: host candidates
    ice_servers: tuple[str | IceServerSettings, ...] = ()
    # "relay": every session through the TURN server (the server offers relay candidates only, and clients are
    # told to do the same through GET /rtc/config); needs a TURN server in ice_servers
    ice_transport_policy: Literal["all", "relay"] = "all"
    # offer 127.0.0.1 host candidates (aioice leaves them out); None: when the server listens on loopback
    allow_loopback_candidates: bool | None = None
    # session tokens: "auto" requires them unless the server listens on loopback only
    auth: Literal["auto", "required", "off"] = "auto"
    secret: str | None = None  # HMAC key for tokens (set it through LLMASOS_SERVER__SECRET); None: data_dir/secret.key
    # the key a game backend presents to mint session tokens (`POST /tokens`); None: no minting over HTTP
    operator_key: str | None = Field(None, min_length=16)
    # browser origins allowed to open sessions, e.g. ["https://world.example"]; the server's own is always allowed
    allowed_origins: tuple[str, ...] = ()
    # HTTPS: a certificate (PEM, the chain) and its private key. Browsers (headsets' included) allow the microphone
    # only in a secure context: off localhost, serve HTTPS here or behind a TLS reverse proxy (docs/deploy.md)
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both (HTTPS) or neither")
        return self

    @model_validator(mode="after")
    def _relay_needs_turn(self) -> ServerSettings:
        turn = any(not isinstance(s, str) and s.turn for s in self.ice_servers)  # a bare URL string has no credentials
        if self.ice_transport_policy == "relay" and not turn:
            raise ValueError("ice_transport_policy 'relay' needs a TURN server (with credentials) in ice_servers")
        return self


class LimitSettings(_Section):
    max_sessions: int = Field(8, ge=1)  # more get 503 with Retry-After
    max_session_s: float = Field(3600.0, gt=0)  # a session is closed (with an error event) after this long
    max_sdp_bytes: int = Field(64 * 1024, ge=1024)
    max_message_bytes: int = Field(16 * 1024, ge=256)  # one data-channel message
    messages_per_s: float = Field(10.0, gt=0)  # data-channel messages, sustained (bursts up to 2 s worth)
    memory_writes_per_min: int = Field(60, ge=1)  # per session; beyond it writes wait, they are not dropped
    resume_window_s: float = Field(120.0, ge=0)  # a 1:1 session that ended can be resumed this long (`resume`)
    generate_jobs: int = Field(8, ge=1)  # content generation jobs queued or running at once (POST /generate)


class ASRSettings(_Section):
    model: Literal["tiny.en", "base"] = "tiny.en"
    model_dir: Path | None = None
    device: Device = "auto"
    compute_type: str | None = None  # default: int8 on CPU, float16 on CUDA
    beam_size: int = Field(1, ge=1, le=10)
    cpu_threads: int = Field(0, ge=0)  # 0: one per core
    language: str | None = None  # None: the model decides (tiny.en is English only)
    partial_interval_ms: int = Field(600, ge=100)
    partials: bool = True  # re-decode the growing utterance while the user speaks
    # word timings on final transcripts: ~50 ms more per decode, and a conversation does not use them
    # (`llmasos transcribe --json` turns them on for its output)
    word_timestamps: bool = False
    # encode a window fitted to the utterance (at least min_window_ms) instead of Whisper's 30 s: 3-4x faster on a
    # CPU, same WER on `llmasos bench voice`; needs a known language (English-only models, or `language` set) and
    # no word timings; a decode Whisper's own checks reject is decoded the full way
    fitted_window: bool = True
    min_window_ms: int = Field(8000, ge=2000, le=30000)
    speculative: bool = True  # start the final decode during the endpointing silence (kept if the turn ends)
    speculate_after_ms: int = Field(100, ge=0, le=5000)  # ... once the pause is this long


class VADSettings(_Section):
    model_dir: Path | None = None
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    neg_threshold: float | None = Field(None, gt=0.0, lt=1.0)  # speech ends below it; None: threshold - 0.15
    # the model's state is made fresh after this much quiet (0: never): carried through a long silence, it
    # scores the first word after it too low to start speech (voice/vad.py)
    quiet_reset_ms: int = Field(1000, ge=0, le=60000)


class EndpointSettings(_Section):
    # what ends a turn: "smart_turn" (an audio end-of-turn model judges each pause, see below) or "silence"
    # (min_silence_ms of silence, whatever was said)
    # (off by default: on the labelled set of `llmasos bench turn` it cuts more mid-turn pauses than 500 ms of
    # silence, and with a fast model the reply to a cut-off fragment can start before the player goes on)
    end_of_turn: Literal["smart_turn", "silence"] = "silence"
    turn_model_dir: Path | None = None  # a folder with one Smart Turn v3 .onnx, or the file; None: packaged
    turn_check_ms: int = Field(200, ge=32, le=2000)  # the model judges a pause once it is this long
    turn_max_silence_ms: int = Field(1000, ge=100, le=10000)  # a pause judged incomplete ends the turn after this
    turn_threshold: float = Field(0.5, gt=0.0, lt=1.0)  # the model's probability above which a turn is complete
    min_silence_ms: int = Field(500, ge=100, le=5000)  # end_of_turn "silence"
    # the character's own voice coming back through a player's microphone (a headset without echo cancellation,
    # a client that plays into its microphone) is found in the audio that player was sent and taken out before
    # listening, so it is neither a barge-in nor a turn (voice/echo.py)
    echo_gate: bool = True
    # pause_on_speech: speech of the one a reply answers pauses it; if it was one of `backchannels` ("uh-huh",
    # "yeah"; or no words at all) the reply goes on where it held, anything else stops it. Off: any speech of
    # theirs stops the reply at once (the default until it is tested with real peers)
    pause_on_speech: bool = True
    backchannels: tuple[str, ...] = BACKCHANNELS
    pre_roll_ms: int = Field(300, ge=0, le=2000)
    min_speech_ms: int = Field(150, ge=0, le=5000)
    # with pause_on_speech, this much speech of the one a reply answers holds it (before min_speech_ms makes it
    # speech; a sound that is not lets the reply play on)
    onset_ms: int = Field(64, ge=0, le=5000)
    max_utterance_s: float = Field(20.0, ge=1.0, le=120.0)
    cut_search_ms: int = Field(2000, ge=32, le=10000)  # a long utterance is cut at its quietest point in here
    # prepare the reply during the endpointing silence from the speculative transcript (asr.speculative);
    # it is spoken only if the utterance ends on that pause with the same words, else dropped unheard
    preemptive: bool = True


class TTSSettings(_Section):
    voice: str = "joe"  # the voice of characters that name none, and of the name it stands for
    model_dir: Path | None = None  # a folder with one Piper voice (.onnx + .onnx.json), or the .onnx file
    # more voices characters may name: <voices_dir>/<name>.onnx with its <name>.onnx.json
    voices_dir: Path | None = None
    device: Device = "auto"
    length_scale: float | None = Field(None, gt=0.1, le=5.0)  # None: the voice's own pace
    first_clause_chars: int = Field(0, ge=0, le=500)  # > 0: speak the first clause once it is this long
    sentence_pause_ms: int = Field(0, ge=0, le=2000)


class LLMSettings(_Section):
    # auto: transformers on a CUDA device; else llama.cpp when llama-cpp-python is installed; else transformers
    backend: Literal["auto", "transformers", "openai", "llamacpp"] = "auto"
    model_dir: Path | None = None
    device: Device = "auto"
    max_new_tokens: int = Field(64, ge=1, le=4096)  # "one to three short sentences"; small models ramble to the cap
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    # OpenAI-compatible endpoint (vLLM, llama.cpp server, ...). The key is read from the environment
    # variable named here, never from a file.
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(20.0, gt=0)
    threads: int = Field(0, ge=0)  # CPU threads for local generation; 0: one per core
    history_turns: int = Field(6, ge=0, le=100)  # at most this many exchanges in the prompt (trimmed to half)
    clause_min_words: int = Field(4, ge=1, le=100)  # speak a clause early once it has this many words
    native_tools: bool = True  # openai backend: world actions as tool calls; False: inline action markup
    # who picks the world action the player asks for, beside the reply (dialogue.choice): "cues" (request forms
    # and cue words, no model: reliable with small models), "model" (a grammar-constrained choice by the LLM;
    # cues on a backend without constrained output), "markup" (only what the model writes or calls itself)
    action_choice: Literal["cues", "model", "markup"] = "cues"
    cache_converted: bool = True  # keep the packaged GGUF's dequantized copy in data_dir (~0.5 GB; fast starts)
    # llama.cpp: the packaged Q4_1 file re-encoded once into this type (cached in data_dir): q8_0 computes a
    # prompt ~1.7x faster on AVX2/AVX-512 CPUs and keeps the 4-bit weights' values; "packaged": as shipped
    llamacpp_weights: Literal["q8_0", "f16", "packaged"] = "q8_0"
    # llama.cpp contexts (KV caches): each reply gets the free one that already holds most of its prompt, so a
    # conversation's cache survives a second conversation or a memory summary (~50 MB each at 2048 tokens)
    llamacpp_contexts: int = Field(2, ge=1, le=64)
    # llama.cpp CPU kernels: "auto" runs the best variant the OS enables, proved by a probe (llmasos doctor);
    # a variant name ("haswell", "skylakex", "zen4", ...) forces that one (it is still probed)
    llamacpp_cpu: str = Field("auto", pattern=r"^[a-z0-9_]{1,32}$")


class EmbeddingsSettings(_Section):
    model_dir: Path | None = None
    device: Device = "auto"
    batch_size: int = Field(64, ge=1, le=1024)


class MemorySettings(_Section):
    chroma_url: str | None = None  # e.g. http://127.0.0.1:8001 for a `chroma run` server; None: embedded
    top_k: int = Field(4, ge=0, le=50)
    recall_budget_ms: int = Field(150, ge=1)
    # prefix of the Chroma collections' names (one collection per player, one per character's world facts)
    collection: str = Field("memories", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,400}[a-zA-Z0-9]$")
    candidates: int = Field(20, ge=1, le=500)  # nearest memories re-ranked by recency and importance
    half_life_hours: float = Field(72.0, gt=0)  # a memory's recency halves every half-life
    weight_similarity: float = Field(1.0, ge=0)
    weight_recency: float = Field(0.3, ge=0)
    weight_importance: float = Field(0.3, ge=0)
    write_batch: int = Field(64, ge=1, le=1000)  # queued memories embedded and written together
    reflect_every: int = Field(8, ge=0)  # heard turns summarised into one reflection; 0: never


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LLMASOS_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    characters_dir: Path | None = None  # None: the characters shipped with llmasos
    rooms_dir: Path | None = None  # more rooms, beside (and replacing by id) the rooms shipped with llmasos
    # generated content (characters, quests, scenes, stories, rooms: `llmasos generate --save`, POST /generate),
    # loaded beside characters_dir's and rooms_dir's; None: data_dir/content
    content_dir: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # text: message then key=value fields; json: one object per line
    log_content: bool = False  # true: logs may hold what people said and prompts (debugging); false: lengths only
    server: ServerSettings = ServerSettings()
    asr: ASRSettings = ASRSettings()
    vad: VADSettings = VADSettings()
    endpoint: EndpointSettings = EndpointSettings()
    tts: TTSSettings = TTSSettings()
    llm: LLMSettings = LLMSettings()
    embeddings: EmbeddingsSettings = EmbeddingsSettings()
    memory: MemorySettings = MemorySettings()
    limits: LimitSettings = LimitSettings()

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
        data = _rebase(data, Settings, file.resolve().parent)
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


def _rebase(data: dict[str, Any], model: type[BaseModel], base: Path) -> dict[str, Any]:
    """A config file's relative paths are relative to the file, not to the working directory."""
    out = dict(data)
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            continue  # an unknown key: validation says so
        kind = field.annotation
        if isinstance(value, str) and (kind is Path or Path in typing.get_args(kind)):
            path = Path(value).expanduser()
            out[key] = str(path if path.is_absolute() else base / path)
        elif isinstance(value, dict) and isinstance(kind, type) and issubclass(kind, BaseModel):
            out[key] = _rebase(value, kind, base)
    return out


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """``LLMASOS_*`` variables that set nothing (a typo would otherwise be ignored), each with a hint."""
    environ = os.environ if environ is None else environ
    names = _paths(Settings)
    problems = []
    for name in sorted(environ):
        path = name[len("LLMASOS_") :].lower()
        if name.startswith("LLMASOS_") and name != "LLMASOS_CONFIG" and path not in names:
            problems.append(f"the environment variable {name} matches no setting{_nearest(path, names)}; it is ignored")
    return problems


def _paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every setting as its environment variable names it ("llm__backend"), sections too (one may be set
    whole, as JSON)."""
    out = []
    for name, field in model.model_fields.items():
        out.append(f"{prefix}{name}")
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += _paths(kind, f"{prefix}{name}__")
    return out


def _nearest(path: str, names: list[str]) -> str:
    """The setting ``path`` probably meant (one "_" for the "__" between a section and its field, a letter
    off), as a hint."""
    squashed = {n.replace("_", ""): n for n in names}
    close = difflib.get_close_matches(path, names, n=1, cutoff=0.85)
    if not close:
        close = [squashed[m] for m in difflib.get_close_matches(path.replace("_", ""), squashed, n=1, cutoff=0.9)]
    return f" (did you mean LLMASOS_{close[0].upper()}?)" if close else ""


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
    if key in ("secret", "operator_key"):
        return f"# {key} = (set, not shown: LLMASOS_SERVER__{key.upper()})"
    return f"{key} = {_toml_value(value)}"


def _toml_value(value: Any) -> str:
    """A value as TOML (JSON's string escapes are TOML's), so the output loads back."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)
