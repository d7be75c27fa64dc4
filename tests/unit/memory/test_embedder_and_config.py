"""The model-free embedder, the Chroma server address, and the settings -> store options mapping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llmasos.memory_factory import chroma_dir, store_options
from llmasos.settings import Settings
from memory.chroma_client import parse_url
from memory.embedder import HashingEmbedder
from memory.errors import MemoryInputError

pytestmark = pytest.mark.unit


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hashing_embedder_gives_deterministic_unit_vectors() -> None:
    e = HashingEmbedder(32)
    a, b, empty = e.embed(["The sword is sharp", "the SWORD is sharp!", "..."])
    assert e.dimension == 32 and len(a) == 32
    for v in (a, b, empty):
        assert math.isclose(math.sqrt(dot(v, v)), 1.0)
    assert a == b  # case and punctuation do not matter
    assert e.embed(["The sword is sharp"]) == [a]


def test_hashing_embedder_puts_texts_sharing_words_closer() -> None:
    e = HashingEmbedder(256)
    q, near, far = e.embed(["where is the blue sword", "the blue sword is in the chest", "bread costs two coins"])
    assert dot(q, near) > dot(q, far)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8001", ("127.0.0.1", 8001, False)),
        ("https://memory.example:9443/", ("memory.example", 9443, True)),
        ("localhost:8002", ("localhost", 8002, False)),
        ("http://chroma", ("chroma", 8000, False)),
    ],
)
def test_parse_url(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://h:1", "http://h:1/api", "http://h:99999", "http://"])
def test_parse_url_refuses_what_is_not_a_server_address(url: str) -> None:
    with pytest.raises(MemoryInputError):
        parse_url(url)


def test_store_options_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        memory={"collection": "npc-mem", "candidates": 7, "half_life_hours": 2.0, "weight_recency": 0.0},
    )
    opts = store_options(settings)
    assert (opts.collection, opts.candidates) == ("npc-mem", 7)
    assert opts.rank.half_life_s == 7200.0
    assert opts.rank.weight_recency == 0.0
    assert chroma_dir(settings) == tmp_path / "chroma"
    assert opts.journal == tmp_path / "memory-journal.jsonl"
    assert (opts.retry.initial_s, opts.retry.max_s) == (0.5, 30.0)
