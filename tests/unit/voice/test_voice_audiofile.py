"""Decoding files through av and writing WAV: good files, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voice.audio import float_to_s16
from voice.audiofile import decode_file, read_wav, write_wav
from voice.errors import AudioFileError, AudioFormatError, EmptyAudioError, VoiceError
from voice.testing import tone

pytestmark = pytest.mark.unit


def test_decode_wav_to_16k_mono(tmp_path: Path) -> None:
    stereo = np.stack([float_to_s16(tone(0.5, 440.0, rate=44_100))] * 2, axis=1)
    path = tmp_path / "a.wav"
    write_wav(path, stereo, 44_100)
    out = decode_file(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 8_000) <= 2
    assert 0.25 < np.abs(out).max() <= 1.0


def test_write_and_read_wav(tmp_path: Path) -> None:
    pcm = float_to_s16(tone(0.1, rate=22_050))
    write_wav(tmp_path / "b.wav", pcm, 22_050)
    back, rate = read_wav(tmp_path / "b.wav")
    assert rate == 22_050 and back.shape == (len(pcm), 1)
    assert np.array_equal(back[:, 0], pcm)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file"):
        decode_file(tmp_path / "nope.wav")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="not a file"):
        decode_file(tmp_path)


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is text\n", bytes(range(256)) * 20, b"RIFF\x10\x00\x00\x00WAVEfmt "]
)
def test_corrupt_files_are_audio_file_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match="not a readable audio file"):
        decode_file(path)


def test_empty_audio(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    write_wav(path, np.zeros(0, dtype=np.int16), 16_000)
    with pytest.raises(EmptyAudioError, match="no audio samples"):
        decode_file(path)


def test_errors_share_one_root(tmp_path: Path) -> None:
    with pytest.raises(VoiceError):
        decode_file(tmp_path / "nope.flac")


def test_write_wav_rejects_bad_rates(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError):
        write_wav(tmp_path / "c.wav", np.zeros(10, dtype=np.int16), 0)


def test_read_wav_rejects_non_wav(tmp_path: Path) -> None:
    (tmp_path / "d.wav").write_bytes(b"not a wav")
    with pytest.raises(AudioFileError):
        read_wav(tmp_path / "d.wav")
