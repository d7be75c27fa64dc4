"""rtc/: WebRTC signalling, inbound/outbound audio tracks, the data-channel protocol.

Imports nothing of llmasos, voice, dialogue or memory.
"""

from rtc.audio import FRAME_SAMPLES, SAMPLE_RATE, InboundAudio, OutboundAudioTrack, PcmFrame
from rtc.errors import IceUnavailableError, ProtocolError, RTCError, SignalingError
from rtc.peer import PeerOptions, PeerSession

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "IceUnavailableError",
    "InboundAudio",
    "OutboundAudioTrack",
    "PcmFrame",
    "PeerOptions",
    "PeerSession",
    "ProtocolError",
    "RTCError",
    "SignalingError",
]
