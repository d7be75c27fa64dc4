"""Collection names: any player or character id maps to a valid, distinct Chroma collection name."""

from __future__ import annotations

import re

import pytest

from memory.collections import CollectionSet

pytestmark = pytest.mark.unit

CHROMA_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")  # Chroma 1.5's rule


@pytest.mark.parametrize("key", ["alice", "Ålice Ünïcode 🐉", "a", "x" * 5000, "../../etc/passwd", " "])
def test_any_id_gives_a_valid_name(key: str) -> None:
    names = CollectionSet(client=None, prefix="memories")
    for scope in ("p", "w"):
        assert CHROMA_NAME.match(names.name(scope, key))  # type: ignore[arg-type]


def test_names_separate_scopes_ids_and_prefixes() -> None:
    a, b = CollectionSet(None, "memories"), CollectionSet(None, "other")
    assert len({a.name("p", "alice"), a.name("w", "alice"), a.name("p", "bob"), b.name("p", "alice")}) == 4
    assert a.name("p", "alice") == a.name("p", "alice")
    assert a.name("p", "alice").startswith("memories-p-")
