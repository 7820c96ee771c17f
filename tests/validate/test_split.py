"""One file on two workers (its stylesheets shared out) reports exactly what one process does."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from facturflow import validate, validate_many
from facturflow.artefacts import builtin
from facturflow.rules import Step
from facturflow.validation.report import Report
from facturflow.validation.split import PartJob, assign

from .helpers import FIXTURES


def _comparable(report: Report) -> Report:
    # Layer timings differ from run to run; everything else must be identical.
    layers = tuple(dataclasses.replace(layer, seconds=0.0) for layer in report.layers)
    return dataclasses.replace(report, layers=layers)


FILES = sorted(p for p in FIXTURES.rglob("*") if p.suffix in {".xml", ".pdf"})


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_one_file_on_two_workers_reports_what_one_process_reports(path: Path) -> None:
    (split,) = validate_many([path], jobs=2, timeout=120)
    alone = validate(path)
    assert _comparable(split) == _comparable(alone)
    assert split.path == str(path) and type(split.path) is str


def test_the_shares_cover_every_step_once_costliest_first() -> None:
    steps = [
        Step("xsd", "xsd", builtin("xsd-ubl-invoice")),
        Step("en16931", "schematron", builtin("sch-en16931-ubl")),
        Step("fr-ctc", "schematron", builtin("sch-brfr-ubl")),
    ]
    shares = assign(steps, 2)
    assert sorted(i for share in shares for i in share) == [0, 1, 2]
    assert shares[0] == [1]  # the biggest stylesheet alone; the XSD rides with the smaller one
    assert shares[1] == [0, 2]
    assert assign(steps, 1) == [[0, 1, 2]]


def test_a_part_job_is_the_file_name_and_survives_pickling() -> None:
    job = PartJob("invoice.xml", 1, 2)
    copy = pickle.loads(pickle.dumps(job))
    assert copy == "invoice.xml" and (copy.part, copy.parts) == (1, 2)


def test_an_unreadable_file_on_two_workers_is_reported_once_as_unreadable(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<Invoice><unclosed>")
    (report,) = validate_many([broken], jobs=2, timeout=60)
    assert report.error is not None and not report.ok
    assert report.path == str(broken)
    assert [f.rule for f in report.findings] == ["XML-MALFORMED"]
