"""Edges a new user (or an attacker) reaches first: hostile values, one line each, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from facturflow import exitcodes
from facturflow.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VALID = FIXTURES / "valid" / "fr-invoice-en16931.xml"


@pytest.mark.parametrize(
    "args",
    [
        # nan passed click's FloatRange (every comparison false): the wait never gave up,
        # and validate ran without a time limit; inf and 1e300 crashed with an OverflowError.
        ["validate", "--timeout", "nan", str(VALID)],
        ["validate", "--timeout", "inf", str(VALID)],
        ["validate", "--timeout", "1e300", str(VALID)],
        ["send", "--wait", "--timeout", "nan", str(VALID)],
        ["send", "--wait", "--timeout", "-1", str(VALID)],
        ["send", "--wait", "--poll-interval", "-1", str(VALID)],
        ["send", "--wait", "--poll-interval", "nan", str(VALID)],
        ["sandbox", "--fault-rate", "nan"],
    ],
)
def test_non_finite_or_out_of_range_numbers_are_usage_errors(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "state"))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == exitcodes.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "--timeout" in result.output or "--poll-interval" in result.output \
        or "--fault-rate" in result.output
    assert not (tmp_path / "state").exists()  # refused before anything started
