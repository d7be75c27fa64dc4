"""Errors raised by voice/.

    VoiceError
    ├── AudioError               audio that cannot be used
    │   ├── AudioFormatError         wrong sample rate, channel count or sample type
    │   ├── AudioFileError           a file that is missing, unreadable, corrupt or not audio (has .path)
    │   └── EmptyAudioError          no samples at all
    ├── ModelLoadError           a model file could not be loaded (has .path)
    └── SynthesisError           the TTS engine failed on a text

Every message says what was wrong and, where it helps, what to do.
"""

from __future__ import annotations

from pathlib import Path


class VoiceError(Exception):
    """Root of voice/'s errors."""


class AudioError(VoiceError):
    pass


class AudioFormatError(AudioError):
    pass


class AudioFileError(AudioError):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class EmptyAudioError(AudioError):
    pass


class ModelLoadError(VoiceError):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class SynthesisError(VoiceError):
    pass
