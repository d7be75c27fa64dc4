"""The memory benchmark runs end to end on a tiny size and reports what it measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.bench.memory import bench_memory
from llmasos.settings import Settings
from memory import SentenceTransformerEmbedder

pytestmark = pytest.mark.integration


def test_bench_memory_reports_recall_and_writes(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    result = bench_memory(Settings(data_dir=tmp_path), [300, 100], queries=4, writes=20, embedder=minilm)
    assert result["status"] == "ok"
    assert [r["size"] for r in result["recall"]] == [100, 300]
    for row in result["recall"]:
        assert row["queries"] == 4
        assert 0 < row["recall_ms_p50"] <= row["recall_ms_p95"]
        assert row["mean_results"] > 0
    assert result["write"]["stored"] == 20
    assert result["write"]["memories_per_s"] > 0
    assert "synthetic unit vectors" in result["method"]
    assert "| 300 |" in result["markdown"]
    assert list(tmp_path.iterdir()) == []  # nothing written to the data directory
