"""Every error code the code can send is in docs/protocol.md, and the data channel's are the `error` schema's enum:
read from the source, so a new code that nobody documented fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rtc.protocol import ERROR_CODES, schemas

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
_ARGS = r"(?:[^()]|\([^()]*\))*?"  # a call's arguments up to a keyword (one level of nested parentheses)

# (files, pattern): where a code is sent on the data channel
CHANNEL = [
    ("llmasos/**/*.py", r'ErrorMessage\(code="([a-z_]+)"'),
    ("llmasos/**/*.py", r'\breport\(\w+, "([a-z_]+)"'),  # Host.report: an `error` to the participant
    ("llmasos/seat.py", r'\bself\.error\("([a-z_]+)"'),  # Seat.error: counted and sent
    ("llmasos/reply.py", r'(?<![.\w])error\("([a-z_]+)"'),  # the reply's error callback is Seat.error
    ("rtc/*.py", r"ProtocolError\(" + _ARGS + r'code="([a-z_]+)"'),
]
# where a code answers an HTTP request ({"error": {"code", "message"}})
HTTP = [
    ("llmasos/server.py", r'\berror\(\s*\d{3},\s*"([a-z_]+)"'),
    ("llmasos/auth.py", r'AuthError\(\d{3}, "([a-z_]+)"'),
    ("rtc/peer.py", r"SignalingError\(" + _ARGS + r'code="([a-z_]+)"'),
    ("rtc/errors.py", r'class \w+\(SignalingError\):\s*(?:"""[^"]*"""\s*)?code = "([a-z_]+)"'),  # raised as is
]


def _codes(where: list[tuple[str, str]]) -> set[str]:
    found: set[str] = set()
    for pattern, regex in where:
        for path in ROOT.glob(pattern):
            found |= set(re.findall(regex, path.read_text(encoding="utf-8"), re.S))
    return found


def test_the_scan_finds_the_codes_it_must() -> None:  # the patterns cannot silently match nothing
    assert {"llm_unavailable", "tts_failed", "reply_failed", "bad_audio", "session_too_long", "bad_message"} <= (
        _codes(CHANNEL)
    )
    assert {"rate_limited", "unknown_type", "invalid_field", "asr_failed", "listen_failed"} <= _codes(CHANNEL)
    assert {"unknown_room", "invalid_token", "bad_sdp", "server_full", "loading", "turn_unavailable"} <= _codes(HTTP)


def test_every_code_sent_is_documented() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    missing = sorted(code for code in _codes(CHANNEL) | _codes(HTTP) if f"`{code}`" not in doc)
    assert missing == [], f"error codes the code sends that docs/protocol.md does not list: {missing}"


def test_the_error_schema_lists_exactly_the_codes_the_data_channel_sends() -> None:
    assert set(ERROR_CODES) == _codes(CHANNEL)
    error = schemas()["server-to-client"]["$defs"]["ErrorMessage"]
    assert set(error["properties"]["code"]["enum"]) == set(ERROR_CODES)
    assert "type" in error["required"] and "code" in error["required"]


def test_type_is_required_in_every_message_schema() -> None:
    for direction in schemas().values():
        for name, definition in direction["$defs"].items():
            if "type" in definition.get("properties", {}):
                assert "type" in definition.get("required", []), name
