"""rtc/: WebRTC signalling, inbound/outbound audio tracks, the data-channel protocol.

Imports nothing of llmasos, voice, dialogue or memory.
"""
