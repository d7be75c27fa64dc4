"""Builds voice/'s components from the settings tree and the model registry.

Models load once per process (``load_asr``, ``load_vad``, ``load_turn``, ``load_tts``); each session then opens its own
listening state (``open_listener``). voice/'s load errors become llmasos ModelErrors here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dialogue.types import Character
from llmasos.errors import ConfigError, ModelError
from llmasos.models import ModelStore, Role, asr_model_name, resolve
from llmasos.settings import Settings
from voice.asr import WhisperASR, WhisperLoadOptions, WhisperOptions, WindowOptions
from voice.endpoint import Endpointer, EndpointOptions, TurnOptions
from voice.errors import ModelLoadError
from voice.listener import Listener, ListenerOptions
from voice.smart_turn import SmartTurn
from voice.tts import PiperOptions, PiperTTS
from voice.types import ASR, TurnDetector, VoiceStyle
from voice.vad import DetectorOptions, SileroVAD

VOICES = {"joe": "piper-joe-medium"}


def load_asr(settings: Settings, store: ModelStore, model: str | None = None) -> WhisperASR:
    """Whisper per ``settings.asr`` (``model``: "tiny.en" or "base" overrides the setting)."""
    cfg = settings.asr
    name = model or cfg.model
    user_dir = cfg.model_dir if model is None else None
    path = resolve(store, Role.ASR, asr_model_name(name), user_dir)
    window = WindowOptions(min_window_s=cfg.min_window_ms / 1000) if cfg.fitted_window else None
    options = WhisperOptions(
        beam_size=cfg.beam_size, language=cfg.language, word_timestamps=cfg.word_timestamps, window=window
    )
    load = WhisperLoadOptions(device=cfg.device, compute_type=cfg.compute_type, cpu_threads=cfg.cpu_threads)
    try:
        return WhisperASR.load(path, options, load)
    except ModelLoadError as exc:
        raise ModelError(asr_model_name(name), str(exc)) from None


def load_vad(settings: Settings, store: ModelStore) -> SileroVAD:
    path = _one_onnx(resolve(store, Role.VAD, None, settings.vad.model_dir), "vad model_dir")
    try:
        return SileroVAD.load(path, quiet_reset_s=settings.vad.quiet_reset_ms / 1000)
    except ModelLoadError as exc:
        raise ModelError(path.name, str(exc)) from None


def load_turn(settings: Settings, store: ModelStore) -> SmartTurn | None:
    """The end-of-turn model (None when ``endpoint.end_of_turn`` is "silence")."""
    ep = settings.endpoint
    if ep.end_of_turn == "silence":
        return None
    path = _one_onnx(resolve(store, Role.TURN, None, ep.turn_model_dir), "endpoint turn_model_dir")
    try:
        return SmartTurn.load(path)
    except ModelLoadError as exc:
        raise ModelError(path.name, str(exc)) from None


def _one_onnx(path: Path, what: str) -> Path:
    if not path.is_dir():
        return path
    candidates = sorted(path.glob("*.onnx"))
    if len(candidates) != 1:
        raise ModelError(str(path), f"{what} {path} must hold exactly one .onnx file")
    return candidates[0]


def load_tts(settings: Settings, store: ModelStore, name: str | None = None) -> PiperTTS:
    """The voice ``name`` (default: ``tts.voice``, from ``tts.model_dir`` when set): a packaged voice or
    ``<tts.voices_dir>/<name>.onnx``."""
    cfg = settings.tts
    name = name or cfg.voice
    if name == cfg.voice and cfg.model_dir is not None:
        path = resolve(store, Role.TTS, None, cfg.model_dir)
    elif (user := _user_voice(settings, name)) is not None:
        path = user
    elif name in VOICES:
        path = resolve(store, Role.TTS, VOICES[name], None)
    else:
        raise ConfigError(f"unknown voice {name!r}; {known_voices(settings)}")
    if path.is_dir():
        candidates = sorted(path.glob("*.onnx"))
        if len(candidates) != 1:
            raise ModelError(str(path), f"tts model_dir {path} must hold exactly one .onnx voice")
        path = candidates[0]
    options = PiperOptions(
        use_cuda=_tts_cuda(cfg.device),
        length_scale=cfg.length_scale,
        first_clause_chars=cfg.first_clause_chars,
        sentence_pause_ms=cfg.sentence_pause_ms,
    )
    try:
        return PiperTTS.load(path, options)
    except ModelLoadError as exc:
        raise ModelError(path.name, str(exc)) from None


def _user_voice(settings: Settings, name: str) -> Path | None:
    folder = settings.tts.voices_dir
    path = folder / f"{name}.onnx" if folder is not None else None
    return path if path is not None and path.is_file() else None


def known_voices(settings: Settings) -> str:
    """The voices characters may name, as a sentence for error messages."""
    names = set(VOICES) | {settings.tts.voice}
    folder = settings.tts.voices_dir
    if folder is not None and folder.is_dir():
        names |= {p.name.removesuffix(".onnx") for p in folder.glob("*.onnx")}
    where = f"add <name>.onnx and its .onnx.json to {folder}" if folder else "or set tts.voices_dir to a folder of them"
    return f"voices: {', '.join(sorted(names))} ({where})"


def voice_known(settings: Settings, name: str) -> bool:
    return name in VOICES or name == settings.tts.voice or _user_voice(settings, name) is not None


def character_voices(
    settings: Settings, store: ModelStore, characters: Iterable[Character], loaded: dict[str, PiperTTS] | None = None
) -> dict[str, PiperTTS]:
    """Each character's voice, by character id: every named voice loaded once (``loaded``: those already
    loaded, by name; it is added to), styled with the character's own pace and pitch (the styled voices share
    their model and its synthesis thread)."""
    loaded = {} if loaded is None else loaded
    voices: dict[str, PiperTTS] = {}
    for character in characters:
        choice = character.voice
        if choice.name not in loaded:
            loaded[choice.name] = load_tts(settings, store, choice.name)
        voices[character.id] = loaded[choice.name].styled(VoiceStyle(choice.rate, choice.pitch))
    return voices


def _tts_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    import onnxruntime

    available = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if device == "cuda" and not available:
        raise ConfigError("tts.device is cuda but onnxruntime has no CUDA provider here; use auto or cpu")
    return available


def endpoint_options(settings: Settings) -> EndpointOptions:
    ep, vad = settings.endpoint, settings.vad
    return EndpointOptions(
        min_silence_ms=ep.min_silence_ms,
        pre_roll_ms=ep.pre_roll_ms,
        min_speech_ms=ep.min_speech_ms,
        onset_ms=ep.onset_ms,
        max_utterance_s=ep.max_utterance_s,
        cut_search_ms=ep.cut_search_ms,
        detector=DetectorOptions(threshold=vad.threshold, neg_threshold=vad.neg_threshold),
        turn=TurnOptions(
            check_ms=ep.turn_check_ms,
            max_silence_ms=max(ep.turn_check_ms, ep.turn_max_silence_ms),
            threshold=ep.turn_threshold,
        ),
    )


def open_listener(settings: Settings, vad: SileroVAD, asr: ASR, turn: TurnDetector | None = None) -> Listener:
    """One session's listening stage over the shared models."""
    asr_cfg = settings.asr
    options = ListenerOptions(
        partials=asr_cfg.partials,
        partial_interval_s=asr_cfg.partial_interval_ms / 1000,
        speculative=asr_cfg.speculative,
        speculate_after_s=asr_cfg.speculate_after_ms / 1000,
    )
    return Listener(Endpointer(vad.open(), endpoint_options(settings), turn), asr, options)
