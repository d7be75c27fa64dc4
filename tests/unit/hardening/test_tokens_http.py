"""A game backend mints session tokens over HTTP with the operator key (`POST /tokens`), under the one id rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import LoadedEngine
from fastapi.testclient import TestClient

from llmasos.auth import load_secret, verify
from llmasos.server import create_app
from llmasos.settings import load_settings

pytestmark = pytest.mark.unit

KEY = "operator-key-0123456789"


def _client(tmp: Path, **server: Any) -> TestClient:
    settings = load_settings(None, data_dir=str(tmp), server=server)
    app = create_app(settings, loader=lambda s, p: LoadedEngine("blacksmith", "innkeeper"))  # type: ignore[arg-type,return-value]
    return TestClient(app)


def test_the_operator_key_mints_a_token_the_server_accepts(tmp_path: Path) -> None:
    with _client(tmp_path, operator_key=KEY) as http:
        http.app.state.llmasos.engine = LoadedEngine("blacksmith", "innkeeper")  # type: ignore[attr-defined]
        body = {"player": "ann.smith", "characters": ["blacksmith"], "ttl_s": 600}
        answer = http.post("/tokens", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert (got["player"], got["expires_in_s"]) == ("ann.smith", 600)
        claims = verify(load_secret(None, tmp_path), got["token"])
        assert claims.player == "ann.smith" and tuple(claims.characters) == ("blacksmith",)


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"player": "ann", "characters": ["blacksmith"]}, 401, "invalid_operator_key"),
        (
            {"Authorization": "Bearer wrong-key-0123456789"},
            {"player": "ann", "characters": ["*"]},
            401,
            "invalid_operator_key",
        ),
        (
            {"Authorization": f"Bearer {KEY}"},
            {"player": "ann smith", "characters": ["blacksmith"]},
            422,
            "invalid_request",
        ),
        (
            {"Authorization": f"Bearer {KEY}"},
            {"player": "ann", "characters": ["blacksmith"], "ttl_s": -5},
            422,
            "invalid_request",
        ),
        ({"Authorization": f"Bearer {KEY}"}, {"player": "ann", "characters": ["Nobody!"]}, 422, "invalid_request"),
        ({"Authorization": f"Bearer {KEY}"}, {"player": "ann", "characters": ["nobody"]}, 404, "unknown_character"),
    ],
)
def test_bad_requests_get_clear_errors(
    tmp_path: Path, headers: dict[str, str], body: dict[str, Any], status: int, code: str
) -> None:
    with _client(tmp_path, operator_key=KEY) as http:
        http.app.state.llmasos.engine = LoadedEngine("blacksmith", "innkeeper")  # type: ignore[attr-defined]
        answer = http.post("/tokens", json=body, headers=headers)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_without_an_operator_key_there_is_no_minting(tmp_path: Path) -> None:
    with _client(tmp_path) as http:
        answer = http.post(
            "/tokens", json={"player": "ann", "characters": ["*"]}, headers={"Authorization": "Bearer x"}
        )
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "tokens_disabled")
