from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtc.errors import ProtocolError
from rtc.protocol import (
    CLIENT_TYPES,
    MAX_MESSAGE_BYTES,
    ActionMessage,
    InterruptMessage,
    PingMessage,
    ReplyMessage,
    StateMessage,
    TextMessage,
    encode,
    parse_client_message,
    parse_server_message,
    schemas,
)

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs" / "protocol"


def test_valid_client_messages() -> None:
    assert parse_client_message('{"type":"text","text":"hello there"}') == TextMessage(type="text", text="hello there")
    assert parse_client_message('{"type":"interrupt"}') == InterruptMessage(type="interrupt")
    assert parse_client_message('{"type":"ping","id":7}') == PingMessage(type="ping", id=7)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "bad_json"),
        ("[1,2]", "bad_message"),
        ('"text"', "bad_message"),
        ("{}", "unknown_type"),
        ('{"type":"shout","text":"x"}', "unknown_type"),
        ('{"type":5}', "unknown_type"),
        ('{"type":"text"}', "invalid_field"),
        ('{"type":"text","text":42}', "invalid_field"),
        ('{"type":"text","text":""}', "invalid_field"),
        ('{"type":"text","text":"hi","extra":1}', "invalid_field"),
        (b'{"type":"text","text":"hi"}', "binary_not_supported"),
        ('{"type":"text","text":"' + "a" * MAX_MESSAGE_BYTES + '"}', "message_too_large"),
        ("[" * 5000 + "]" * 5000, "bad_json"),
    ],
)
def test_bad_client_messages_have_codes(raw: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code == code
    assert info.value.message


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_parser_never_raises_anything_but_protocol_error(raw: str | bytes) -> None:
    try:
        parse_client_message(raw)
    except ProtocolError:
        pass


@given(
    st.dictionaries(
        st.sampled_from(["type", "text", "id", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=50), st.sampled_from(["text", "ping"])),
    )
)
def test_parser_on_arbitrary_objects(obj: dict[str, object]) -> None:
    try:
        msg = parse_client_message(json.dumps(obj))
    except ProtocolError as exc:
        assert exc.code == ("unknown_type" if obj.get("type") not in CLIENT_TYPES else "invalid_field")
    else:
        assert msg.type == obj["type"]


def test_server_messages_round_trip() -> None:
    for message in (
        StateMessage(state="thinking", turn=1),
        ReplyMessage(text="Hello.", delta="Hello.", turn=1),
        ActionMessage(name="wave", args={"target": "player"}, turn=1, at_ms=320),
    ):
        assert parse_server_message(encode(message)) == message
    assert json.loads(encode(StateMessage(state="listening"))) == {"type": "state", "state": "listening"}


def test_docs_schemas_are_current() -> None:
    for name, schema in schemas().items():
        path = DOCS / f"{name}.schema.json"
        assert path.is_file(), f"{path} is missing: run `llmasos protocol-schema --out docs/protocol`"
        assert json.loads(path.read_text()) == schema, f"{path} is stale: run `llmasos protocol-schema`"
