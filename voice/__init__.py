"""voice/: audio frames, VAD, endpointing, ASR and TTS. Imports nothing of llmasos, dialogue, memory or rtc."""
