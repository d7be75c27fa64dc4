"""Limits: each configurable, each with a clear error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmasos.server import _run, create_app
from llmasos.settings import load_settings
from rtc.errors import ProtocolError
from rtc.protocol import parse_client_message
from rtc.ratelimit import TokenBucket

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refuses_then_refills() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=4.0, clock=clock)
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    clock.now += 0.5
    assert bucket.take() and not bucket.take()
    assert bucket.should_report() and not bucket.should_report()


def test_token_bucket_reserve_makes_writers_wait_not_drop() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=clock)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 3.0]


def test_message_size_limit_is_configurable() -> None:
    parse_client_message('{"type":"text","text":"' + "a" * 500 + '"}', max_bytes=1024)
    with pytest.raises(ProtocolError) as info:
        parse_client_message('{"type":"text","text":"' + "a" * 500 + '"}', max_bytes=256)
    assert info.value.code == "message_too_large"


class _Loaded:
    characters: dict[str, Any] = {}

    def character(self, _: str) -> None:
        return None

    async def aclose(self) -> None:
        pass


async def test_full_server_answers_503_with_retry_after(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path), limits={"max_sessions": 2})
    app = create_app(settings, loader=lambda s, p: _Loaded())  # type: ignore[arg-type,return-value]
    async with app.router.lifespan_context(app):
        state = app.state.llmasos
        await state.ready.wait()
        state.sessions.update({"a": object(), "b": object()})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            offer = {"sdp": "v=0", "type": "offer", "character": "blacksmith", "player": "ann"}
            res = await c.post("/rtc/offer", json=offer)
        state.sessions.clear()
    assert res.status_code == 503 and res.headers["retry-after"] == "10"
    assert res.json()["error"]["code"] == "server_full"
    assert "2 sessions" in res.json()["error"]["message"]


async def test_invalid_ids_are_refused(tmp_path: Path) -> None:
    app = create_app(load_settings(None, data_dir=str(tmp_path)), loader=lambda s, p: _Loaded())  # type: ignore[arg-type,return-value]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            res = await c.post("/rtc/offer", json={"sdp": "v=0", "type": "offer", "character": "../etc", "player": "a"})
    assert res.status_code == 422 and res.json()["error"]["code"] == "invalid_request"
    assert "character" in res.json()["error"]["message"]


class _Peer:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.closed = False

    def send(self, message: Any) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        self.closed = True


class _Forever:
    async def run(self) -> None:
        await asyncio.Event().wait()


async def test_session_length_limit_closes_with_an_error(tmp_path: Path) -> None:
    app = create_app(load_settings(None, data_dir=str(tmp_path)), loader=lambda s, p: _Loaded())  # type: ignore[arg-type,return-value]
    state = app.state.llmasos
    peer = _Peer()
    await _run(state, "s1", peer, _Forever().run(), max_s=0.01)  # type: ignore[arg-type]
    assert peer.closed
    assert [m.code for m in peer.sent] == ["session_too_long"]
