"""Errors raised by the composition root.

    LLMasOSError
    ├── ConfigError            settings file or environment is invalid
    └── ModelError             a model cannot be used (has .model: the model's name)
        ├── ModelMissingError      its package is not installed or a file is absent
        └── ModelChecksumError     a file's sha256 is not the one pinned

voice/, dialogue/, memory/ and rtc/ have error trees of their own (they import nothing from here).
Every message says what to do next.
"""

from __future__ import annotations


class LLMasOSError(Exception):
    """Root of the composition root's errors."""


class ConfigError(LLMasOSError):
    pass


class ModelError(LLMasOSError):
    def __init__(self, model: str, message: str) -> None:
        super().__init__(message)
        self.model = model


class ModelMissingError(ModelError):
    pass


class ModelChecksumError(ModelError):
    pass
