"""One aiortc peer connection per session: non-trickle signalling, the `events` data channel, audio edges.

``PeerSession.accept(offer_sdp, options)`` answers an offer (ICE gathering completes before the answer is
returned, so the answer carries every candidate). The session then exposes:

- ``audio_frames()``: the caller's microphone as ``PcmFrame``s (bounded, drop-oldest);
- ``speaker``: the ``OutboundAudioTrack`` the character speaks into (a 1:1 session); in a room the peer is
  sent its room's mix instead (``accept(..., outbound=mixer.add_participant(...))``);
- ``send(message)``: a server message on the data channel (held, in order, until the channel opens);
- ``messages()``: parsed client messages, or ``ProtocolError``s to answer with an `error` event;
- ``closed``: set when the peer goes away (closed, failed, or ICE consent expired).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import aiortc
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from pydantic import BaseModel

from rtc.audio import InboundAudio, OutboundAudioTrack, PcmFrame, SentTap
from rtc.errors import IceUnavailableError, ProtocolError, SignalingError
from rtc.loopback import allow_loopback_candidates
from rtc.mixer import MixedTrack
from rtc.protocol import CHANNEL_LABEL, MAX_MESSAGE_BYTES, ClientMessage, encode, parse_client_message
from rtc.ratelimit import TokenBucket

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024


@dataclass(frozen=True)
class IceServer:
    """A STUN server, or a TURN server with its ``username`` and ``credential`` (players behind NAT, mobile
    networks)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def browser(self) -> dict[str, object]:
        """As a browser's RTCIceServer dictionary (what `GET /rtc/config` hands to clients)."""
        out: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


IcePolicy = Literal["all", "relay"]


def rtc_configuration(servers: tuple[IceServer, ...], policy: IcePolicy = "all") -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in servers],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if policy == "relay" else RTCIceTransportPolicy.ALL,
    )


def turn_urls(servers: tuple[IceServer, ...]) -> list[str]:
    """Every ``turn:`` and ``turns:`` URL, in order."""
    return [url for server in servers for url in server.urls if url.startswith(("turn:", "turns:"))]


def first_turn_url(servers: tuple[IceServer, ...]) -> str | None:
    """The TURN URL aiortc allocates on: it uses one TURN server, the first ``turn:`` (UDP or TCP) or
    ``turns:`` (TCP) URL; the rest are handed to clients only."""
    for url in turn_urls(servers):
        if url.startswith("turn:") and "transport=tls" not in url:
            return url
        if url.startswith("turns:") and "transport=udp" not in url:
            return url
    return None


@dataclass(frozen=True)
class PeerOptions:
    ice_servers: tuple[IceServer, ...] = ()  # empty: host candidates only
    # "relay": only TURN relay candidates (every byte through the TURN server: players who must not see the
    # server's address, or a check that TURN works)
    ice_transport_policy: IcePolicy = "all"
    allow_loopback: bool = False  # offer 127.0.0.1 host candidates (loopback-only networks, tests)
    inbound_max_frames: int = 250  # 5 s of 20 ms frames, then the oldest is dropped
    # the caller's audio is released after this many later frames (aiortc's own: 4, i.e. 80 ms on every turn);
    # the server listens, it does not play, so its buffer only has to put reordered packets back in order
    inbound_jitter_frames: int = 1
    speaker_buffer_ms: int = 200
    max_pending_messages: int = 1000  # held until the data channel opens
    max_sdp_bytes: int = MAX_SDP_BYTES
    max_message_bytes: int = MAX_MESSAGE_BYTES
    messages_per_s: float = 10.0  # client messages, sustained; bursts of 2 s worth; the rest are refused


def shallow_jitter_buffer(receiver: RTCRtpReceiver, frames: int) -> bool:
    """Release ``receiver``'s audio ``frames`` frames after it arrives instead of aiortc's fixed 4 (80 ms).

    aiortc's audio jitter buffer holds a constant depth: a frame leaves when ``prefetch`` complete frames follow
    it. For a player's microphone that only feeds a VAD and a recogniser there is no playout to smooth, so that
    depth is latency on every turn; one frame is enough to put a packet that came out of order back in place.
    aiortc keeps the buffer private (it is made in the receiver's constructor): when its shape is not the one
    this was written against (aiortc 1.16), nothing changes and False is returned."""
    attribute = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, attribute, None)
    if not isinstance(current, JitterBuffer) or getattr(current, "_is_video", True):
        log.warning("the inbound jitter buffer is left as aiortc made it", extra={"aiortc": aiortc.__version__})
        return False
    setattr(receiver, attribute, JitterBuffer(capacity=current.capacity, prefetch=max(1, frames)))
    return True


class PeerSession:
    def __init__(self, pc: RTCPeerConnection, options: PeerOptions, outbound: MediaStreamTrack | None = None) -> None:
        self._pc = pc
        self._options = options
        self.speaker = OutboundAudioTrack(options.speaker_buffer_ms)
        self.outbound: MediaStreamTrack = outbound or self.speaker  # what the peer hears
        self.closed = asyncio.Event()
        self._inbound: InboundAudio | None = None
        self._track_ready = asyncio.Event()
        self._channel: RTCDataChannel | None = None
        self.channel_open = asyncio.Event()
        self._pending: collections.deque[str] = collections.deque(maxlen=options.max_pending_messages)
        self._incoming: asyncio.Queue[ClientMessage | ProtocolError | None] = asyncio.Queue(maxsize=256)
        self.answer: RTCSessionDescription | None = None
        self._bucket = TokenBucket(options.messages_per_s, burst=options.messages_per_s * 2)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self._inbound is None:
                self._inbound = InboundAudio(track, options.inbound_max_frames)
                self._track_ready.set()

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label != CHANNEL_LABEL or self._channel is not None:
                log.info("ignoring data channel", extra={"label": channel.label})
                return
            self._attach(channel)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.debug("peer connection state", extra={"state": pc.connectionState})
            if pc.connectionState in ("failed", "closed"):
                await self.close()

    @classmethod
    async def accept(
        cls, sdp: str, options: PeerOptions = PeerOptions(), outbound: MediaStreamTrack | None = None
    ) -> PeerSession:
        """Answer a client's offer; the peer hears ``outbound`` (default: its own ``speaker``). Raises
        SignalingError on an offer that cannot be answered."""
        if len(sdp.encode("utf-8", errors="replace")) > options.max_sdp_bytes:
            raise SignalingError(f"SDP larger than {options.max_sdp_bytes} bytes", code="sdp_too_large")
        if "m=audio" not in sdp:
            raise SignalingError("the offer has no audio media section (m=audio)", code="bad_sdp")
        if options.allow_loopback:
            allow_loopback_candidates()
        pc = RTCPeerConnection(configuration=rtc_configuration(options.ice_servers, options.ice_transport_policy))
        session = cls(pc, options, outbound)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    shallow_jitter_buffer(transceiver.receiver, options.inbound_jitter_frames)
            pc.addTrack(session.outbound)  # reuses the offer's audio transceiver: sendrecv
            await pc.setLocalDescription(await pc.createAnswer())  # waits for ICE gathering
        except (ValueError, TypeError, KeyError, IndexError, AssertionError) as exc:
            await pc.close()
            raise SignalingError(f"cannot answer this offer: {exc or type(exc).__name__}", code="bad_sdp") from None
        session.answer = pc.localDescription
        turn = first_turn_url(options.ice_servers)
        if turn is not None and " typ relay" not in session.answer.sdp:
            # the TURN server refused or did not answer the allocation: players behind NAT cannot connect
            log.warning("no TURN relay candidate", extra={"turn": turn, "policy": options.ice_transport_policy})
            if options.ice_transport_policy == "relay":
                await pc.close()
                raise IceUnavailableError(
                    f"the TURN server {turn} gave no relay address (refused the credentials, or unreachable), "
                    "and server.ice_transport_policy is 'relay'"
                )
        return session

    def tap_sent(self, tap: SentTap) -> None:
        """``tap`` gets every frame of audio the peer is sent, as it is sent (the echo gate's reference)."""
        outbound = self.outbound
        if isinstance(outbound, OutboundAudioTrack | MixedTrack):
            outbound.on_sent = tap

    def _attach(self, channel: RTCDataChannel) -> None:
        self._channel = channel

        def flush() -> None:
            while self._pending and channel.readyState == "open":
                channel.send(self._pending.popleft())
            self.channel_open.set()

        if channel.readyState == "open":
            flush()
        else:
            channel.on("open", flush)

        @channel.on("message")
        def on_message(raw: str | bytes) -> None:
            if not self._bucket.take():
                if self._bucket.should_report():
                    self._enqueue(ProtocolError("too many messages; slow down", code="rate_limited"))
                return
            try:
                item: ClientMessage | ProtocolError = parse_client_message(raw, self._options.max_message_bytes)
            except ProtocolError as exc:
                item = exc
            self._enqueue(item)

        @channel.on("close")
        def on_close() -> None:
            self.channel_open.clear()

    def _enqueue(self, item: ClientMessage | ProtocolError) -> None:
        if self._incoming.full():  # the conversation is not keeping up: the oldest message gives way
            item = ProtocolError("too many messages; slow down", code="rate_limited")
            with contextlib.suppress(asyncio.QueueEmpty):
                self._incoming.get_nowait()
        self._incoming.put_nowait(item)

    def send(self, message: BaseModel) -> None:
        """Send a server message; held in order until the channel is open."""
        data = encode(message)
        channel = self._channel
        if channel is not None and channel.readyState == "open" and not self._pending:
            channel.send(data)
        else:
            self._pending.append(data)

    async def messages(self) -> AsyncIterator[ClientMessage | ProtocolError]:
        while True:
            item = await self._incoming.get()
            if item is None:
                return
            yield item

    async def audio_frames(self) -> AsyncIterator[PcmFrame]:
        """The caller's microphone. Ends when the track ends or the session closes."""
        waiter = asyncio.ensure_future(self._track_ready.wait())
        closer = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({waiter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            closer.cancel()
        if self._inbound is None:
            return
        async for frame in self._inbound.frames():
            yield frame

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._incoming.put_nowait(None)
        self.speaker.stop()
        self.outbound.stop()
        if self._inbound is not None:
            await self._inbound.close()
        await self._pc.close()
