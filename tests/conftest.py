"""Shared test helpers: where the shared corpus is, and how to skip cleanly without it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# `facturflow validate` keeps verdicts in the user's cache folder by default: the suite's runs
# (subprocesses included) must neither read what an earlier run stored nor fill that folder.
# The cache's own tests give a folder of their own (--cache DIR, VerdictCache(tmp_path)).
os.environ["FACTURFLOW_VERDICT_CACHE"] = "off"


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


# Property tests run derandomized by default (`make test`, CI, a plain `pytest`): the same
# examples every run, so that a random counter-example never decides whether a change lands and
# a failure replays as is. `make test-random` loads the "random" profile to explore new examples
# with a seed it prints (`make test-random SEED=...` replays it). Neither profile reads or writes
# the example database (.hypothesis/): a run never depends on what earlier runs found.
settings.register_profile("derandomized", derandomize=True, database=None, print_blob=True)
settings.register_profile("random", derandomize=False, database=None, print_blob=True)
settings.load_profile("derandomized")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "property: a hypothesis property test (marked automatically; make test-random)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)
