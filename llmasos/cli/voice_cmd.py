"""`llmasos transcribe FILE...`: one transcript per file; `llmasos say TEXT -o out.wav`: write speech."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from llmasos.models import ModelStore
from llmasos.settings import Settings
from llmasos.voice_factory import load_asr, load_tts
from voice.audiofile import decode_file, write_wav
from voice.errors import VoiceError


def register(sub: Any) -> None:
    t: argparse.ArgumentParser = sub.add_parser("transcribe", help="transcribe audio files (wav, flac, mp3, ...)")
    t.add_argument("files", nargs="+", type=Path, metavar="FILE")
    t.add_argument("--model", choices=["tiny.en", "base"], default=None, help="default: settings asr.model")
    t.add_argument("--json", action="store_true", help="one JSON object per file: text, language, words")
    t.set_defaults(handler=run_transcribe, one_shot=True)
    s: argparse.ArgumentParser = sub.add_parser("say", help="speak a text into a WAV file")
    s.add_argument("text", help="what to say ('-' reads standard input)")
    s.add_argument("-o", "--output", type=Path, required=True, help="the WAV file to write")
    s.set_defaults(handler=run_say, one_shot=True)


def _error(message: str) -> None:
    print(f"llmasos: error: {message}", file=sys.stderr)


def run_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    # decode first, so a bad file is reported before a model is loaded
    audio: list[tuple[Path, np.ndarray[Any, Any] | None]] = []
    failures = 0
    for path in args.files:
        try:
            audio.append((path, decode_file(path)))
        except VoiceError as exc:
            _error(str(exc))
            audio.append((path, None))
            failures += 1
    if failures == len(audio):
        return 2
    if args.json:  # the JSON lines carry word timings
        settings = settings.model_copy(update={"asr": settings.asr.model_copy(update={"word_timestamps": True})})
    asr = load_asr(settings, ModelStore(settings.data_dir), args.model)
    try:
        for path, samples in audio:
            if samples is None:
                continue
            try:
                transcript = asr.transcribe_sync(samples, final=True)
            except VoiceError as exc:
                _error(f"{path}: {exc}")
                failures += 1
                continue
            if args.json:
                words = [{"text": w.text, "start": w.start_s, "end": w.end_s} for w in transcript.words]
                record = {"file": str(path), "text": transcript.text, "language": transcript.language, "words": words}
                print(json.dumps(record, ensure_ascii=False))
            else:
                print(transcript.text)
    finally:
        asr.close()
    return 1 if failures else 0


def run_say(args: argparse.Namespace, settings: Settings) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not any(c.isalnum() for c in text):
        _error("nothing to say: the text has no words")
        return 2
    tts = load_tts(settings, ModelStore(settings.data_dir))
    try:
        pcm = tts.synthesize_sync(text)
        if not len(pcm):
            _error("the voice produced no audio for this text")
            return 1
        write_wav(args.output, pcm, tts.sample_rate)
    except VoiceError as exc:
        _error(str(exc))
        return 1
    except OSError as exc:
        _error(f"cannot write {args.output}: {exc.strerror or exc}")
        return 1
    finally:
        tts.close()
    print(f"wrote {args.output} ({len(pcm) / tts.sample_rate:.2f} s at {tts.sample_rate} Hz)", file=sys.stderr)
    return 0
