"""Corpus round trips: every valid UBL, CII and Factur-X instance reads, writes back in its own
syntax to an equal model, and converts to the other syntax losing only documented terms."""

from __future__ import annotations

import pytest

from .fidelity import (
    KNOWN_LOSSES,
    corpus_path,
    corpus_rows,
    measure,
    validates,
)

GROUPS = ("ubl", "cii", "facturx")
ROWS = [
    row for row in corpus_rows()
    if row["expected"] == "valid" and row["path"].split("/")[0] in GROUPS
]


@pytest.mark.corpus
@pytest.mark.parametrize("index_row", list(enumerate(ROWS)),
                         ids=[row["path"] for row in ROWS] or None)
def test_corpus_instance_round_trips(index_row: tuple[int, dict[str, str]]) -> None:
    index, row = index_row
    path = corpus_path() / row["path"]
    if not path.is_file():
        pytest.skip(f"corpus file {path} not found")
    outcome = measure(path, row["path"].split("/")[0], validate=validates(index))
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.error is None, outcome.error
    assert not outcome.round_trip, f"terms changed by read -> write -> read: {outcome.round_trip}"
    unexplained = outcome.cross - set(KNOWN_LOSSES[outcome.direction])
    assert not unexplained, f"{outcome.direction} changed terms {sorted(unexplained)}"
    if outcome.new_fatal_round_trip is not None:
        # Writing back in the source's own syntax and profile must not break any rule the
        # source passes. (Findings after conversion to the other syntax are reported in the
        # fidelity table: most come from what the source profile lacks, e.g. MINIMUM has no
        # lines, or from rules that one syntax's French Schematron applies and not the other.)
        unexplained_rules = set(outcome.new_fatal_round_trip)
        assert not unexplained_rules, f"round trip added fatal findings {unexplained_rules}"


def test_corpus_is_present_or_the_skip_says_why() -> None:
    if not ROWS:
        pytest.skip(f"shared corpus not found at {corpus_path()} (set FACTURFLOW_CORPUS)")
    assert len(ROWS) > 500
