"""The reusable JavaScript client (llmasos/web/client.js), run in Node: what it sends is valid against the
published JSON Schemas and the HTTP API's own models, and it refuses what is not a server message."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llmasos.http_api import CharacterOffer, GenerateRequest, RoomOffer

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
NODE = shutil.which("node") or shutil.which("nodejs")

SCRIPT = """
import { messages, offerBody, parseServerMessage, tokenPlayer } from "./client.mjs";
const out = {
  sent: [
    messages.text("Hello there"), messages.interrupt(), messages.ping(), messages.ping(7),
    messages.focus("blacksmith"), messages.focus(null), messages.world(["It is night.", "The player holds a torch."]),
    messages.world([]), messages.actionResult(3, "give_item", false, "inventory full"),
    messages.actionResult(4, "wave", true), messages.played(2, 1234.6), messages.played(3, -5),
  ],
  offers: [
    offerBody({ sdp: "v=0", character: "blacksmith", player: "ann" }),
    offerBody({ sdp: "v=0", room: "tavern", player: "ann", name: "Ann", greet: false }),
    offerBody({ sdp: "v=0", character: "blacksmith", player: "ann", token: "t.m",
                resume: "0123456789abcdef0123456789abcdef" }),
  ],
  parsed: parseServerMessage('{"type": "state", "state": "listening"}'),
  player: tokenPlayer(
    Buffer.from(JSON.stringify({ sub: "ann.smith", chr: ["*"], exp: 1 })).toString("base64url") + ".mac"),
  refused: [],
};
for (const raw of ['[1, 2]', '{"state": "x"}', 'null', 'not json']) {
  try { parseServerMessage(raw); } catch (err) { out.refused.push(raw); }
}
const bad_offers = [
  { sdp: "", player: "ann" }, { sdp: "", character: "a", room: "b", player: "ann" }, { sdp: "", character: "a" },
];
for (const bad of bad_offers) {
  try { offerBody(bad); } catch (err) { out.refused.push(JSON.stringify(bad)); }
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    assert NODE, "Node.js is needed: `make test` installs Debian's nodejs"
    work = tmp_path_factory.mktemp("js")
    shutil.copy(ROOT / "llmasos" / "web" / "client.js", work / "client.mjs")  # as an ES module
    (work / "run.mjs").write_text(SCRIPT)
    out = subprocess.run([NODE, str(work / "run.mjs")], capture_output=True, text=True, check=True, cwd=work)
    return dict(json.loads(out.stdout))


def test_every_message_it_sends_is_valid_against_the_schema(ran: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "docs" / "protocol" / "client-to-server.schema.json").read_text())
    for message in ran["sent"]:
        jsonschema.validate(message, schema)  # raises with the reason
    assert {m["type"] for m in ran["sent"]} == {
        "text",
        "interrupt",
        "ping",
        "focus",
        "world",
        "action_result",
        "played",
    }


def test_its_offers_are_what_the_server_takes(ran: dict[str, Any]) -> None:
    first, room, resumed = ran["offers"]
    CharacterOffer.model_validate(first)
    assert RoomOffer.model_validate(room).greet is False
    assert CharacterOffer.model_validate(resumed).resume == "0123456789abcdef0123456789abcdef"


def test_it_reads_server_messages_and_tokens_and_refuses_the_rest(ran: dict[str, Any]) -> None:
    assert ran["parsed"] == {"type": "state", "state": "listening"}
    assert ran["player"] == "ann.smith"
    assert len(ran["refused"]) == 7  # four non-messages, three offers without a target or a player


GENERATE = """
import { generate } from "./client.mjs";
const answers = {
  ok: [{ id: "j1", state: "queued", progress: { tokens: 0 } }, { id: "j1", state: "running", progress: { tokens: 9 } },
       { id: "j1", state: "done", progress: { tokens: 20 }, result: { id: "greta" }, saved: ["greta.json"] }],
  failed: [{ id: "j2", state: "queued", progress: { tokens: 0 } },
           { id: "j2", state: "failed", error: "no valid character" }],
  refused: [{ error: { code: "too_many_jobs", message: "8 jobs" } }],
};
const out = { requests: [], seen: [], results: {} };
for (const [name, replies] of Object.entries(answers)) {
  let i = 0;
  globalThis.fetch = async (url, init = {}) => {
    out.requests.push({ url, method: init.method || "GET", body: init.body ? JSON.parse(init.body) : null,
                        auth: (init.headers || {}).Authorization || null });
    const body = replies[i++];
    const refused = Boolean(body.error?.code);
    return { ok: !refused, status: refused ? 429 : 200, json: async () => body };
  };
  try {
    const job = await generate({ kind: "character", prompt: "a baker", seed: 3, token: "t.m", everyMs: 0,
                                 onProgress: (j) => out.seen.push(j.state) });
    out.results[name] = { state: job.state, id: job.result.id };
  } catch (err) {
    out.results[name] = { code: err.code };
  }
}
console.log(JSON.stringify(out));
"""


def test_generate_posts_a_valid_job_and_follows_it_until_it_ends(tmp_path: Path) -> None:
    assert NODE, "Node.js is needed: `make test` installs Debian's nodejs"
    shutil.copy(ROOT / "llmasos" / "web" / "client.js", tmp_path / "client.mjs")
    (tmp_path / "gen.mjs").write_text(GENERATE)
    out = json.loads(subprocess.run([NODE, "gen.mjs"], capture_output=True, text=True, check=True, cwd=tmp_path).stdout)
    assert out["results"] == {"ok": {"state": "done", "id": "greta"}, "failed": {"code": "generation_failed"},
                              "refused": {"code": "too_many_jobs"}}  # fmt: skip
    posts = [r for r in out["requests"] if r["method"] == "POST"]
    assert len(posts) == 3 and all(r["url"] == "/generate" and r["auth"] == "Bearer t.m" for r in posts)
    GenerateRequest.model_validate(posts[0]["body"])  # what the server takes
    assert [r["url"] for r in out["requests"][:3]] == ["/generate", "/generate/j1", "/generate/j1"]
    assert out["seen"][:3] == ["queued", "running", "done"]
