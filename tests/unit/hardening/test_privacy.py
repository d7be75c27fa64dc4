"""Privacy: logs hold no transcripts unless debug logging is on; forget removes a player everywhere (the API:
test_auth and the in-process integration test; the store and the CLI: tests/integration/memory)."""

from __future__ import annotations

import logging

import pytest
from fakes import BrokenModel, make_conversation, play_until_final, start

from rtc.protocol import TextMessage

pytestmark = pytest.mark.unit


async def test_logs_hold_no_transcripts(caplog: pytest.LogCaptureFixture) -> None:
    secret = "my secret password is swordfish"
    caplog.set_level(logging.INFO)
    conv, t, _, _, _ = make_conversation(BrokenModel(failures=1))
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text=secret))
    await t.until(lambda m: m["type"] == "error")
    await play_until_final(t)
    t.closed.set()
    await task
    assert caplog.records  # something was logged
    assert all(secret not in str(vars(r)) for r in caplog.records)  # not in messages, nor structured fields


async def test_debug_logging_does_hold_transcripts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="llmasos")
    conv, t, _, _, _ = make_conversation("Fine.")
    task = await start(conv)
    t.inbox.put_nowait(TextMessage(type="text", text="debug me"))
    await play_until_final(t)
    t.closed.set()
    await task
    assert any(getattr(r, "text", None) == "debug me" for r in caplog.records)
