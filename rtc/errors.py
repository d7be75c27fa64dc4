"""Errors of the rtc/ layer.

    RTCError                     (code: a stable string sent to clients in `error` events)
    ├── SignalingError           an offer that cannot be answered (bad SDP, no audio, wrong type)
    │   └── IceUnavailableError  the server cannot answer any offer now (its TURN relay gave no address)
    └── ProtocolError            a data-channel message that cannot be used (bad JSON, unknown type, ...)

A ProtocolError never ends a session: the caller answers it with an `error` event and goes on.
"""

from __future__ import annotations


class RTCError(Exception):
    code = "rtc_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class SignalingError(RTCError):
    code = "bad_offer"


class IceUnavailableError(SignalingError):
    """Not the offer's fault: the server's own ICE setup cannot give it a candidate (HTTP 503)."""

    code = "turn_unavailable"


class ProtocolError(RTCError):
    code = "bad_message"
