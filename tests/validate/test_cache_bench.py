"""The verdict cache benchmark (benchmarks/verdict_cache.py) runs, on a few corpus invoices: a
cold run, a warm re-run answered from the cache, the same reports (its exit code says so)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_benchmark_runs_and_the_warm_run_is_all_cached(corpus: Path, tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.verdict_cache", "--count", "6", "--corpus", str(corpus),
         "--json", str(figures)],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(figures.read_text())
    assert data["invoices"] == 6 and data["warm_all_cached"] and data["reports_identical"]
    assert data["cold_s"] > 0 and data["warm_s"] > 0 and "ratio cold / warm" in result.stdout
