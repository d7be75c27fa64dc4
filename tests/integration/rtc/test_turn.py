"""Sessions through a real TURN server (coturn, a Debian package) with long-term credentials, on loopback.

The server peer is configured as an operator would (a TURN URL with a username and a credential) and with
``ice_transport_policy = "relay"``, so its answer offers relay candidates only: the audio and the `events`
channel can only flow through coturn's allocation. Wrong credentials give no relay address, and the offer is
refused by name instead of a session that never connects.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from rtc import IceUnavailableError, PeerOptions
from rtc.peer import IceServer
from rtc.protocol import StateMessage, TextMessage
from tests.integration.rtc.test_peers import Pair, audio_flows_both_ways, connect

pytestmark = pytest.mark.integration

USER, PASSWORD, REALM = "llmasos", "s3cret-turn-pass", "llmasos.test"


@dataclass(frozen=True)
class Turn:
    url: str
    log: list[str]  # coturn's log lines so far (a thread reads them as it writes)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_it_answers(port: int, process: subprocess.Popen[str]) -> None:
    """A STUN binding request, repeated until coturn answers it (UDP: a request before it listens is lost)."""
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)  # the retransmission interval of this handshake, not a wait for a state
        for _ in range(100):
            if process.poll() is not None:
                pytest.fail(f"turnserver exited with {process.returncode} before it answered on port {port}")
            s.sendto(request, ("127.0.0.1", port))
            try:
                answer = s.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if answer[:2] == b"\x01\x01" and answer[8:20] == request[8:20]:
                return
    pytest.fail(f"turnserver did not answer a STUN binding request on port {port}")


@pytest.fixture(scope="module")
def turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    tmp = tmp_path_factory.mktemp("coturn")
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("coturn is not installed: `make apt-test` installs it (Debian package coturn)")
    port = _free_udp_port()
    process = subprocess.Popen(
        [
            "stdbuf",
            "-oL",  # its log, line by line
            binary,
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--lt-cred-mech",
            f"--user={USER}:{PASSWORD}",
            f"--realm={REALM}",
            "--allow-loopback-peers",  # the players are on loopback too
            "--log-file=stdout",
            "--simple-log",
            "--verbose",  # a line per allocation
            f"--pidfile={tmp / 'turnserver.pid'}",
            f"--userdb={tmp / 'turndb'}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        _wait_until_it_answers(port, process)
        yield Turn(f"turn:127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)  # it ends at the end of coturn's output
        process.stdout.close()


@pytest.fixture
async def relayed(turn: Turn) -> AsyncIterator[Pair]:
    # the player's side has no TURN of its own (a player on an open network): it reaches the relay address
    options = PeerOptions(
        ice_servers=(IceServer((turn.url,), USER, PASSWORD),), ice_transport_policy="relay", allow_loopback=True
    )
    pair = await connect(options)
    try:
        yield pair
    finally:
        await pair.session.close()
        await pair.client.close()


def _candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_a_relay_only_session_carries_audio_and_events_through_turn(relayed: Pair, turn: Turn) -> None:
    session = relayed.session
    assert session.answer is not None
    offered = _candidates(session.answer.sdp)
    port = turn.url.rsplit(":", 1)[1]
    assert offered and all(" typ relay " in c for c in offered), offered  # nothing but coturn's relay address
    assert all(f" {port} " not in c for c in offered)  # the relayed port, not the TURN server's own

    # events both ways over the relayed data channel
    session.send(StateMessage(state="listening"))
    assert json.loads(await asyncio.wait_for(relayed.inbox.get(), 20)) == {"type": "state", "state": "listening"}
    await asyncio.wait_for(relayed.opened.wait(), 10)
    relayed.channel.send('{"type":"text","text":"through the relay"}')
    async for item in session.messages():
        assert item == TextMessage(type="text", text="through the relay")
        break

    # the player's microphone reaches the server, the character's voice reaches the player
    await audio_flows_both_ways(session, relayed.track)
    allocated = [line for line in turn.log if "ALLOCATE processed, success" in line]
    assert any(f"user <{USER}>" in line for line in allocated), "".join(turn.log[-20:])


async def test_wrong_turn_credentials_refuse_the_offer_by_name(turn: Turn) -> None:
    options = PeerOptions(
        ice_servers=(IceServer((turn.url,), USER, "not-the-password"),),
        ice_transport_policy="relay",
        allow_loopback=True,
    )
    with pytest.raises(IceUnavailableError, match="gave no relay address") as caught:
        await connect(options)
    assert caught.value.code == "turn_unavailable" and turn.url in str(caught.value)


async def test_a_working_turn_adds_a_relay_candidate(turn: Turn, caplog: pytest.LogCaptureFixture) -> None:
    options = PeerOptions(ice_servers=(IceServer((turn.url,), USER, PASSWORD),), allow_loopback=True)
    pair = await connect(options)
    try:
        assert pair.session.answer is not None
        kinds = {c.split(" typ ")[1].split()[0] for c in _candidates(pair.session.answer.sdp)}
        assert {"host", "relay"} <= kinds
        assert "no TURN relay candidate" not in caplog.text
    finally:
        await pair.session.close()
        await pair.client.close()
