"""Generation jobs on the server: background work that gives the model up to conversations, saved where the
server finds it, and reported over HTTP (`POST /generate`, `GET /generate/{id}`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fakes import DraftModel
from fastapi.testclient import TestClient

from dialogue import Backend
from llmasos import content as content_module
from llmasos.activity import Activity
from llmasos.auth import load_secret, sign
from llmasos.content import Generations, library, scan_characters
from llmasos.server import create_app
from llmasos.settings import Settings, load_settings

pytestmark = pytest.mark.unit

BAKER = {
    "name": "Greta Honeycomb",
    "role": "baker",
    "persona": "You are Greta, a cheerful baker.",
    "greeting": "Fresh bread!",
    "scenario": "",
    "knowledge": [],
    "items": ["honey_bread"],
    "actions": ["wave"],
}
QUEST = {
    "title": "Honey for the Bakery",
    "giver": "blacksmith",
    "summary": "Fetch honey from the hives.",
    "objectives": [{"type": "bring", "item": "honey", "count": 2}],
    "rewards": [{"item": "silver", "count": 5}],
    "offer": "Bring me two jars of honey?",
    "complete": "Thank you!",
}


def _settings(tmp: Path, **more: Any) -> Settings:
    return load_settings(None, data_dir=str(tmp), **more)


async def test_a_job_gives_the_model_up_to_a_conversation_and_then_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content_module, "RETRY_PAUSE_S", 0.0)
    settings = _settings(tmp_path)
    model = DraftModel(drafts=[None, json.dumps(BAKER)], gate=asyncio.Event(), called=asyncio.Event())
    activity = Activity()
    saved: list[str] = []
    jobs = Generations(
        Backend("fake", model, structured_output=True),
        activity,
        lambda: scan_characters(settings)[0],
        settings,
        lambda g: saved.append(g.content["id"]),
    )
    job = jobs.start("character", "a cheerful baker", seed=11)
    assert job.state == "queued"
    assert model.called is not None
    await model.called.wait()  # the first draft is being written...
    assert job.state == "running" and model.calls[0]["background"] is True
    activity.set("a session", True)  # ...when a player starts to speak: the job stops
    await job.until(lambda j: j.yielded == 1)
    assert len(model.calls) == 1  # nothing starts while the player speaks or is answered
    activity.set("a session", False)
    assert job.task is not None
    await job.task
    assert (job.state, job.yielded, len(model.calls)) == ("done", 1, 2)
    assert model.calls[1]["seed"] == 11  # started again from the same seed
    assert saved == ["greta-honeycomb"]
    found, errors = scan_characters(settings)  # the server finds it at once
    assert "greta-honeycomb" in found and errors == []
    assert job.view(700)["result"]["name"] == "Greta Honeycomb"


async def test_a_saved_quest_is_known_to_its_giver(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    model = DraftModel(drafts=[json.dumps(QUEST)])
    jobs = Generations(
        Backend("fake", model, structured_output=True), Activity(), lambda: scan_characters(settings)[0], settings,
        lambda g: None,
    )  # fmt: skip
    job = jobs.start("quest", "honey for the bakery")
    assert job.task is not None
    await job.task
    assert job.state == "done", job.error
    brom = scan_characters(settings)[0]["blacksmith"]
    offer = brom.action("offer_quest")
    assert offer is not None and offer.params[0].choices == ("honey-for-the-bakery",)
    assert (library(settings).dir("quest") / "honey-for-the-bakery.json").is_file()


async def test_a_failed_job_says_why_and_saves_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    model = DraftModel(drafts=["not json"])
    jobs = Generations(
        Backend("fake", model), Activity(), lambda: scan_characters(settings)[0], settings, lambda g: None
    )
    job = jobs.start("character", "a baker")
    assert job.task is not None
    await job.task
    assert job.state == "failed" and "not a JSON object" in (job.error or "")
    assert not library(settings).dir("character").exists()
    assert "json_schema" not in model.calls[0]  # a backend without structured output is not asked for it


class _Engine:
    """What the server's generation routes need of a loaded engine."""

    def __init__(self, settings: Settings, model: DraftModel) -> None:
        self.settings = settings
        self.backend = Backend("fake", model, structured_output=True)
        self.activity = Activity()
        self.characters = scan_characters(settings)[0]
        self.rooms: dict[str, Any] = {}
        self.reflector = None
        self.reloaded = 0

    def reload_content(self) -> None:
        self.reloaded += 1
        self.characters = scan_characters(self.settings)[0]

    def health(self) -> dict[str, Any]:
        return {"backend": "fake", "state": "in_process"}

    async def aclose(self) -> None:
        pass


def test_post_generate_answers_a_job_at_once_and_get_reports_it_done(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    engine = _Engine(settings, DraftModel(drafts=[json.dumps(BAKER)]))
    app = create_app(settings, loader=lambda s, p: engine)  # type: ignore[arg-type,return-value]
    with TestClient(app) as http:
        http.app.state.llmasos.engine = engine  # type: ignore[attr-defined]
        started = http.post("/generate", json={"kind": "character", "prompt": "a cheerful baker", "seed": 5})
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["state"] in ("queued", "running") and job["seed"] == 5
        tasks = [j.task for j in http.app.state.llmasos.generations.jobs.values()]  # type: ignore[attr-defined]
        http.portal.call(asyncio.gather, *tasks)  # type: ignore[union-attr]
        done = http.get(f"/generate/{job['id']}").json()
        assert done["state"] == "done" and done["result"]["id"] == "greta-honeycomb"
        assert done["saved"] == ["greta-honeycomb.json"] and engine.reloaded == 1
        listed = [c["id"] for c in http.get("/characters").json()["characters"]]
        assert "greta-honeycomb" in listed  # can be talked to at once
        assert http.get("/generate/" + "0" * 32).json()["error"]["code"] == "unknown_job"
        bad = http.post("/generate", json={"kind": "poem", "prompt": "x"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")


def test_with_auth_on_generation_needs_a_token(tmp_path: Path) -> None:
    settings = _settings(tmp_path, server={"auth": "required"})
    engine = _Engine(settings, DraftModel(drafts=[json.dumps(BAKER)]))
    app = create_app(settings, loader=lambda s, p: engine)  # type: ignore[arg-type,return-value]
    with TestClient(app) as http:
        http.app.state.llmasos.engine = engine  # type: ignore[attr-defined]
        body = {"kind": "character", "prompt": "a baker", "save": False}
        refused = http.post("/generate", json=body)
        assert refused.status_code == 401, refused.text
        token = sign(load_secret(None, tmp_path), "ann", ("*",), 60)
        allowed = http.post("/generate", json=body, headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 202, allowed.text
