"""The OpenAI-compatible backend against a small fake server on 127.0.0.1 that streams SSE."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from dialogue import Backend, BackendError, Character, DialogueManager, ReplyAction, ReplyDone, ReplySentence
from dialogue.backends.openai_compat import OpenAICompatChatModel

pytestmark = pytest.mark.unit


class FakeOpenAI:
    """Answers POST /v1/chat/completions with the scripted SSE events; records each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.events: list[dict[str, Any] | str] = []
        self.status = 200
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if fake.status != 200:
                    self.send_response(fake.status)
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "model overloaded"}}')
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b": keep-alive\n\n")
                for event in fake.events:
                    data = event if isinstance(event, str) else json.dumps(event)
                    self.wfile.write(f"data: {data}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script_text(self, *pieces: str, finish: str = "stop") -> None:
        self.events = [_delta({"content": p}) for p in pieces]
        self.events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        self.events.append({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})


def _delta(delta: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _tool(index: int, name: str | None, args: str) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": args}
    if name:
        fn["name"] = name
    return _delta({"tool_calls": [{"index": index, "id": f"c{index}", "type": "function", "function": fn}]})


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    thread.join()


def model(fake: FakeOpenAI, **kw: Any) -> OpenAICompatChatModel:
    return OpenAICompatChatModel(base_url=fake.url, model_name="smol", api_key="sekret", max_tokens=32, **kw)


async def test_streams_text_and_usage(fake: FakeOpenAI) -> None:
    fake.script_text("Hel", "lo ", "there.")
    chunks = [c async for c in model(fake).astream([SystemMessage("be brief"), HumanMessage("hi")])]
    assert "".join(c.text for c in chunks) == "Hello there."
    assert len([c for c in chunks if c.text]) == 3
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage == [{"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}]
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sekret"
    body = request["body"]
    assert body["model"] == "smol" and body["stream"] is True and body["max_tokens"] == 32
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert "tools" not in body


def test_sync_invoke(fake: FakeOpenAI) -> None:
    fake.script_text("One ", "two.")
    assert model(fake).invoke("hi").text == "One two."


async def test_tool_calls_through_the_manager(fake: FakeOpenAI, character: Character) -> None:
    fake.events = [
        _delta({"content": "Here you go. "}),
        _tool(0, "give_item", '{"item": "ma'),
        _tool(0, None, 'p", "target": "player"}'),
        _tool(1, "teleport", '{"target": "moon"}'),
        _tool(2, "emote", '{"emotion": "furious"}'),
        _delta({"content": "Safe travels!"}),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    manager = DialogueManager(Backend("openai", model(fake), native_tools=True), character)
    events = [e async for e in manager.reply("Can I have a map?")]
    assert events == [
        ReplySentence("Here you go.", 0),
        ReplySentence("Safe travels!", 13),
        ReplyAction("give_item", {"item": "map", "target": "player"}, 13),
        ReplyDone("Here you go. Safe travels!", dropped=2),
    ]
    tools = fake.requests[0]["body"]["tools"]
    assert [t["function"]["name"] for t in tools] == [a.name for a in character.actions]
    give = next(t for t in tools if t["function"]["name"] == "give_item")["function"]["parameters"]
    assert give["properties"]["item"]["enum"] == ["sword", "map"] and give["required"] == ["item", "target"]


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (400, False)])
async def test_http_errors(fake: FakeOpenAI, status: int, retryable: bool) -> None:
    fake.status = status
    with pytest.raises(BackendError, match=str(status)) as info:
        [c async for c in model(fake).astream("hi")]
    assert info.value.retryable is retryable


async def test_an_error_event_and_a_dead_endpoint(fake: FakeOpenAI) -> None:
    fake.events = [_delta({"content": "Hi"}), '{"error": {"message": "boom"}}']
    with pytest.raises(BackendError, match="boom"):
        [c async for c in model(fake).astream("hi")]
    dead = OpenAICompatChatModel(base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(BackendError) as info:
        [c async for c in dead.astream("hi")]
    assert info.value.retryable
