"""Audio files: decode anything av reads (wav, flac, mp3, ...) to 16 kHz mono float32; write WAV files."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np

from voice.audio import check_format, resample
from voice.errors import AudioFileError, AudioFormatError, EmptyAudioError
from voice.types import ASR_RATE, PCM, Samples


def decode_file(path: Path, sample_rate: int = ASR_RATE) -> Samples:
    """The file's audio as mono float32 at ``sample_rate``. Raises AudioFileError or EmptyAudioError."""
    if not path.exists():
        raise AudioFileError(path, f"{path}: no such file")
    if not path.is_file():
        raise AudioFileError(path, f"{path}: not a file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFileError(path, f"{path}: contains no audio stream")
            stream = container.streams.audio[0]
            rate = int(stream.rate or 0)
            check_format(rate, 1)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            pieces: list[Samples] = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1).astype(np.float32))
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except (AudioFileError, AudioFormatError):
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioFileError(path, f"{path}: not a readable audio file ({_reason(exc)})") from None
    if not pieces or not sum(len(p) for p in pieces):
        raise EmptyAudioError(f"{path}: the file contains no audio samples")
    return np.clip(resample(np.concatenate(pieces), rate, sample_rate), -1.0, 1.0)


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc).strip()
    return str(text).split(": '", 1)[0] if text else type(exc).__name__


def read_wav(path: Path) -> tuple[PCM, int]:
    """A 16-bit WAV's samples as (samples, channels) int16 and its rate (no resampling)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise AudioFileError(path, f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
            rate, channels = w.getframerate(), w.getnchannels()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioFileError(path, f"{path}: not a readable WAV file ({exc})") from None
    return data.reshape(-1, channels), rate


def write_wav(path: Path, pcm: PCM, sample_rate: int) -> None:
    """Write mono (n,) or (n, channels) int16 PCM as a WAV file."""
    channels = 1 if pcm.ndim == 1 else int(pcm.shape[1])
    check_format(sample_rate, channels)
    try:
        with path.open("wb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    except OSError as exc:
        raise AudioFileError(path, f"cannot write {path}: {exc.strerror or exc}") from None
