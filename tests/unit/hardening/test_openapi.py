"""The HTTP API fuzzed against its own OpenAPI spec (schemathesis): no crash, every answer as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fakes import DraftModel
from hypothesis import HealthCheck, settings

from dialogue import Backend
from llmasos.activity import Activity
from llmasos.server import create_app
from llmasos.settings import load_settings

pytestmark = pytest.mark.unit


class _Memory:
    async def forget(self, player: str, character: str | None = None) -> int:
        return 0


class _Engine:
    """Loaded, with no characters: every offer is answered without media."""

    characters: dict[str, Any] = {}
    rooms: dict[str, Any] = {}
    memory = _Memory()
    reflector = None
    backend = Backend("fake", DraftModel(drafts=["{}"]))  # generation jobs fail: the draft is not a character
    activity = Activity()

    def reload_content(self) -> None:
        pass

    def character(self, _: str) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"backend": "fake", "state": "in_process"}

    async def aclose(self) -> None:
        pass


def _app(tmp: Path) -> Any:
    app = create_app(load_settings(None, data_dir=str(tmp)), loader=lambda s, p: _Engine())  # type: ignore[arg-type,return-value]
    app.state.llmasos.engine = _Engine()
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app(Path("/nonexistent-llmasos-data")))


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_spec(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, response.text
    body = response.json()  # every answer is JSON
    if response.status_code >= 400:
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    case.validate_response(response)


def test_no_page_of_the_server_loads_anything_from_elsewhere(tmp_path: Path) -> None:
    import re

    from fastapi.testclient import TestClient

    with TestClient(_app(tmp_path)) as client:
        assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN: off
        assert client.get("/openapi.json").status_code == 200
        for path in ("/", "/static/app.js", "/static/app.css"):
            text = client.get(path).text
            assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", text), path
            assert not re.search(r"""(?:import|fetch)\s*\(?\s*["'](?:https?:)?//""", text), path
        assert 'rel="icon"' in client.get("/").text  # no favicon request to 404
