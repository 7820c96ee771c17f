"""Shared test helpers: where the shared corpus is, and how to skip cleanly without it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def corpus_path() -> Path:
    """The shared corpus: $FACTURFLOW_CORPUS, else ../shared/corpus beside the checkout."""
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def corpus_rows() -> list[dict[str, str]]:
    """MANIFEST.tsv rows (empty when the corpus is absent)."""
    manifest = corpus_path() / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_path()
    if not (path / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {path} (set FACTURFLOW_CORPUS to its folder)")
    return path


# CI runs are deterministic (a random counter-example must not decide whether a submission
# lands); local runs keep exploring new examples and find new bugs.
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, print_blob=True)
    settings.load_profile("ci")
