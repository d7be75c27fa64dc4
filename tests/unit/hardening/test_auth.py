"""Auth: signed session tokens, and the server's checks before any model is needed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmasos.auth import AuthError, authorize, load_secret, sign, verify
from llmasos.server import create_app
from llmasos.settings import load_settings

pytestmark = pytest.mark.unit

SECRET = b"0123456789abcdef0123456789abcdef"


def test_token_round_trip_and_claims() -> None:
    token = sign(SECRET, "ann", ("blacksmith", "museum_guide"), ttl_s=60)
    claims = verify(SECRET, token)
    assert claims.player == "ann" and claims.allows("blacksmith") and not claims.allows("quest_giver")
    assert authorize(SECRET, token, "ann", "museum_guide") == claims
    assert verify(SECRET, sign(SECRET, "bob", ("*",), 60)).allows("anyone")


@pytest.mark.parametrize(
    ("token", "player", "character", "status", "code"),
    [
        (None, "ann", "blacksmith", 401, "auth_required"),
        (sign(SECRET, "ann", ("blacksmith",), -1), "ann", "blacksmith", 401, "token_expired"),
        (
            sign(b"another-secret-of-some-length", "ann", ("blacksmith",), 86400),
            "ann",
            "blacksmith",
            401,
            "invalid_token",
        ),
        (sign(SECRET, "bob", ("blacksmith",), 86400), "ann", "blacksmith", 403, "player_mismatch"),
        (sign(SECRET, "ann", ("museum_guide",), 86400), "ann", "blacksmith", 403, "character_not_allowed"),
        ("not-a-token", "ann", "blacksmith", 401, "invalid_token"),
    ],
)
def test_refusals(token: str | None, player: str, character: str, status: int, code: str) -> None:
    with pytest.raises(AuthError) as info:
        authorize(SECRET, token, player, character)
    assert (info.value.status, info.value.code) == (status, code)


def test_tampered_claims_are_refused() -> None:
    body, mac = sign(SECRET, "ann", ("blacksmith",), 60).split(".")
    forged = sign(SECRET, "ann", ("*",), 60).split(".")[0]
    with pytest.raises(AuthError, match="signature"):
        verify(SECRET, f"{forged}.{mac}")


@given(st.text(max_size=200))
def test_verify_only_ever_raises_auth_errors(token: str) -> None:
    try:
        verify(SECRET, token, now=time.time())
    except AuthError as exc:
        assert exc.status == 401


def test_secret_file_is_private_and_stable(tmp_path: Path) -> None:
    first = load_secret(None, tmp_path)
    assert load_secret(None, tmp_path) == first and len(first) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


class _NeverLoads:
    """A loader that never finishes: the server answers what it can without models."""

    def __call__(self, settings: Any, progress: Any) -> Any:
        raise RuntimeError("models are not part of this test")


@pytest.fixture
async def public_server(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(None, data_dir=str(tmp_path), server={"host": "0.0.0.0", "secret": SECRET.decode()})
    app = create_app(settings, loader=_NeverLoads())
    async with app.router.lifespan_context(app):
        await app.state.llmasos.ready.wait()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://world.example:8000") as client:
            yield client


def _offer(**extra: Any) -> dict[str, Any]:
    return {
        "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        "type": "offer",
        "character": "blacksmith",
        "player": "ann",
        **extra,
    }


async def test_public_server_needs_a_token(public_server: httpx.AsyncClient) -> None:
    res = await public_server.post("/rtc/offer", json=_offer())
    assert res.status_code == 401 and res.json()["error"]["code"] == "auth_required"
    bad = sign(SECRET, "bob", ("blacksmith",), 60)
    res = await public_server.post("/rtc/offer", json=_offer(), headers={"Authorization": f"Bearer {bad}"})
    assert res.status_code == 403 and res.json()["error"]["code"] == "player_mismatch"
    good = sign(SECRET, "ann", ("blacksmith",), 60)
    res = await public_server.post("/rtc/offer", json=_offer(token=good))
    assert res.status_code == 503  # past auth; no models in this test
    res = await public_server.post("/rtc/offer", json=_offer(), headers={"Authorization": f"Bearer {good}"})
    assert res.status_code == 503


async def test_origin_check(public_server: httpx.AsyncClient) -> None:
    good = sign(SECRET, "ann", ("blacksmith",), 60)
    res = await public_server.post("/rtc/offer", json=_offer(token=good), headers={"Origin": "https://evil.example"})
    assert res.status_code == 403 and res.json()["error"]["code"] == "bad_origin"
    res = await public_server.post(
        "/rtc/offer", json=_offer(token=good), headers={"Origin": "http://world.example:8000"}
    )
    assert res.status_code == 503  # the server's own origin passes
    assert "access-control-allow-origin" not in res.headers  # CORS is off


async def test_forget_needs_the_players_token(public_server: httpx.AsyncClient) -> None:
    res = await public_server.delete("/players/ann/memories")
    assert res.status_code == 401
    bob = sign(SECRET, "bob", ("*",), 60)
    res = await public_server.delete("/players/ann/memories", headers={"Authorization": f"Bearer {bob}"})
    assert res.status_code == 403 and res.json()["error"]["code"] == "player_mismatch"


async def test_loopback_server_runs_open(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path))
    app = create_app(settings, loader=_NeverLoads())
    async with app.router.lifespan_context(app):
        state = app.state.llmasos
        await state.ready.wait()
        assert any("no authentication" in line for line in state.progress)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            res = await c.post("/rtc/offer", json=_offer())
            assert res.status_code == 503  # no token asked for
            health = await c.get("/healthz")
            assert health.status_code == 503 and health.json()["status"] == "failed"
    assert not (tmp_path / "secret.key").exists()
