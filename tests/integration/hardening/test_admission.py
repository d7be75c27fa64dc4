"""Admission: `limits.max_sessions` holds when many real offers arrive at once, and a slot taken by an offer that
fails (or whose client goes away) is given back. Real aiortc peers against the real FastAPI app in-process;
the sessions are real Conversations on fakes of our own protocols (no models)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from fakes import CHARACTER, FakeMemory, FakeVoice, ScriptedListener
from fastapi import FastAPI
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from dialogue import Backend, DialogueManager
from dialogue.types import Character
from llmasos.conversation import Conversation, ConversationOptions, Observer, Services, Transport
from llmasos.server import ServerState, create_app
from llmasos.settings import load_settings
from rtc import PeerOptions, PeerSession
from rtc.loopback import allow_loopback_candidates

pytestmark = pytest.mark.integration

BASE = "http://127.0.0.1"
OFFERS = 20
MAX_SESSIONS = 2
DEFAULT_OPTIONS = PeerOptions()


class SessionEngine:
    """What the server uses of an Engine: one character; each session a real Conversation on fakes."""

    def __init__(self) -> None:
        self.characters: dict[str, Character] = {CHARACTER.id: CHARACTER}
        self.transports: list[Transport] = []
        self.broken = False  # conversation() raises, as a misconfigured engine would

    def character(self, character_id: str) -> Character | None:
        return self.characters.get(character_id)

    def conversation(
        self,
        transport: Transport,
        character: Character,
        player: str,
        observer: Observer | None = None,
        *,
        greet: bool = True,
        manager: DialogueManager | None = None,
    ) -> Conversation:
        self.transports.append(transport)
        if self.broken:
            raise RuntimeError("the dialogue backend is misconfigured")
        model = GenericFakeChatModel(messages=iter([AIMessage(content="Aye.")] * 5))
        services = Services(open_listener=ScriptedListener, tts=FakeVoice(), memory=FakeMemory())
        if observer is not None:
            services = Services(services.open_listener, services.tts, services.memory, observer)
        options = ConversationOptions(greet=False)
        return Conversation(services, transport, DialogueManager(Backend("fake", model), character), player, options)

    async def aclose(self) -> None:
        pass


@dataclass
class Client:
    """A real aiortc client with its offer made (ICE gathered) and its `events` channel."""

    pc: RTCPeerConnection
    channel: RTCDataChannel
    session_message: asyncio.Future[dict[str, Any]] = field(default_factory=asyncio.Future)

    @classmethod
    async def offer(cls) -> Client:
        pc = RTCPeerConnection()
        pc.addTrack(AudioStreamTrack())  # a silent microphone
        client = cls(pc, pc.createDataChannel("events"))

        @client.channel.on("message")
        def on_message(raw: str) -> None:
            message = json.loads(raw)
            if message["type"] == "session" and not client.session_message.done():
                client.session_message.set_result(message)

        await pc.setLocalDescription(await pc.createOffer())
        return client

    def body(self, player: str, character: str = CHARACTER.id) -> dict[str, str]:
        return {"sdp": self.pc.localDescription.sdp, "type": "offer", "character": character, "player": player}


@dataclass
class Server:
    app: FastAPI
    state: ServerState
    engine: SessionEngine
    http: httpx.AsyncClient


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    allow_loopback_candidates()  # the clients' offers carry 127.0.0.1 too (the server's peers add it)
    settings = load_settings(None, data_dir=str(tmp_path), limits={"max_sessions": MAX_SESSIONS})
    engine = SessionEngine()
    app = create_app(settings, loader=lambda s, p: engine)  # type: ignore[arg-type,return-value]
    async with app.router.lifespan_context(app):  # its end closes every session and awaits them
        state: ServerState = app.state.llmasos
        await state.ready.wait()
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield Server(app, state, engine, http)


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[Callable[[int], Any]]:
    made: list[Client] = []

    async def make(n: int) -> list[Client]:
        new = await asyncio.gather(*(Client.offer() for _ in range(n)))
        made.extend(new)
        return list(new)

    try:
        yield make
    finally:
        await asyncio.gather(*(c.pc.close() for c in made))


class GatedAccept:
    """PeerSession.accept held until every offer has either reached it or been answered without it: all the
    offers are in flight at once, so a check-then-await admission lets them all through."""

    def __init__(self, offers: int) -> None:
        self._offers = offers
        self.entered = 0
        self.answered_early = 0
        self.open = asyncio.Event()
        self._accept = PeerSession.accept

    def _check(self) -> None:
        if self.entered + self.answered_early >= self._offers:
            self.open.set()

    async def __call__(self, sdp: str, options: PeerOptions = DEFAULT_OPTIONS) -> PeerSession:
        self.entered += 1
        self._check()
        await self.open.wait()
        return await self._accept(sdp, options)

    def answered(self) -> None:
        if not self.open.is_set():
            self.answered_early += 1
            self._check()


async def test_twenty_concurrent_offers_against_two_slots(
    server: Server, clients: Callable[[int], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = GatedAccept(OFFERS)
    monkeypatch.setattr(PeerSession, "accept", gate)
    offers: list[Client] = await clients(OFFERS)

    async def post(i: int, client: Client) -> httpx.Response:
        response = await server.http.post("/rtc/offer", json=client.body(f"player{i}"))
        gate.answered()
        return response

    responses = await asyncio.wait_for(asyncio.gather(*(post(i, c) for i, c in enumerate(offers))), 120)

    admitted = [(c, r) for c, r in zip(offers, responses, strict=True) if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(admitted) == MAX_SESSIONS and gate.entered == MAX_SESSIONS
    assert len(refused) == OFFERS - MAX_SESSIONS
    for r in refused:
        assert r.status_code == 503 and r.headers["retry-after"] == "10"
        assert r.headers["content-type"] == "application/json"
        error = r.json()["error"]
        assert error["code"] == "server_full" and f"{MAX_SESSIONS} sessions" in error["message"]
    assert len(server.state.sessions) == MAX_SESSIONS and server.state.admitting == 0

    # the two admitted are live sessions: the client connects and its `session` message arrives
    for client, response in admitted:
        answer = response.json()
        await client.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    for client, response in admitted:
        message = await asyncio.wait_for(client.session_message, 30)
        assert message["session"] == response.json()["session"]
    assert set(server.state.sessions) == {r.json()["session"] for _, r in admitted}


async def test_a_failed_offer_gives_its_slot_back(server: Server, clients: Callable[[int], Any]) -> None:
    (good, other, third) = await clients(3)
    failures = [
        {**good.body("ann"), "character": "nobody"},  # 404 unknown_character
        {**good.body("ann"), "sdp": "v=0\r\n"},  # 400 bad_sdp, from the real PeerSession.accept
    ]
    for body in failures * MAX_SESSIONS:
        assert (await server.http.post("/rtc/offer", json=body)).status_code in (400, 404)
    server.engine.broken = True  # the peer is answered, then the session cannot be made
    for _ in range(MAX_SESSIONS):
        failed = await server.http.post("/rtc/offer", json=good.body("ann"))
        assert failed.status_code == 500 and failed.json()["error"]["code"] == "session_failed"
    assert all(t.closed.is_set() for t in server.engine.transports)  # no peer is left without its session
    assert server.state.admitting == 0 and server.state.sessions == {}

    server.engine.broken = False
    for client in (good, other):
        assert (await server.http.post("/rtc/offer", json=client.body("ann"))).status_code == 200
    full = await server.http.post("/rtc/offer", json=third.body("bob"))
    assert full.status_code == 503 and full.json()["error"]["code"] == "server_full"


async def test_a_client_gone_while_its_offer_is_answered_gives_its_slot_back(
    server: Server, clients: Callable[[int], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = asyncio.Event()

    async def never_answered(sdp: str, options: PeerOptions = DEFAULT_OPTIONS) -> PeerSession:
        entered.set()
        await asyncio.Event().wait()  # the client gives up first
        raise AssertionError("unreachable")

    monkeypatch.setattr(PeerSession, "accept", never_answered)
    (client,) = await clients(1)
    request = asyncio.ensure_future(server.http.post("/rtc/offer", json=client.body("ann")))
    await entered.wait()
    assert server.state.admitting == 1
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert server.state.admitting == 0
