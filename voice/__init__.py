"""voice/: audio frames, VAD, endpointing, ASR and TTS. Imports nothing of llmasos, dialogue, memory or rtc.

- ``types``: the contract (AudioFrame, Utterance, Transcript, TTSChunk, ...; the VAD, ASR and TTS protocols)
- ``errors``: the error tree
- ``audio``, ``audiofile``: conversions, streaming resampling, framing; file decoding and WAV writing
- ``vad`` (Silero, streaming), ``endpoint`` (utterances), ``asr`` (faster-whisper), ``listener`` (the stage)
- ``tts`` (Piper, streamed by sentence), ``sentences`` (incremental splitting)
- ``wer`` (word error rate), ``testing`` (fakes of the protocols and synthetic signals)
"""
