"""Smoke tests of the benchmark tools: the invoice generator and one quick benchmark step.

Benchmarks are never timed tests: nothing here asserts a duration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from benchmarks.generate import build_invoice, generate
from benchmarks.reference import SAXON_JARS, run_reference
from lxml import etree

import facturflow
from benchmarks import run

REPO = Path(__file__).resolve().parents[2]

UBL_NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}


def test_generator_is_deterministic_and_sized() -> None:
    assert generate(25, "ubl", seed=3) == generate(25, "ubl", seed=3)
    assert generate(25, "ubl", seed=3) != generate(25, "ubl", seed=4)
    root = etree.fromstring(generate(25, "ubl"))
    assert len(root.findall("cac:InvoiceLine", UBL_NS)) == 25


def test_generated_amounts_add_up() -> None:
    invoice = build_invoice(40, seed=1)
    breakdown = invoice.breakdown()
    assert {rate for rate, _, _ in breakdown} == {
        Decimal("20.00"),
        Decimal("10.00"),
        Decimal("5.50"),
    }
    assert sum(basis for _, basis, _ in breakdown) == invoice.line_total
    assert invoice.grand_total == invoice.line_total + invoice.tax_total
    root = etree.fromstring(generate(40, "ubl", seed=1))
    payable = root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", UBL_NS)
    assert payable is not None and Decimal(payable.text or "") == invoice.grand_total


@pytest.mark.parametrize("syntax", ["ubl", "cii"])
@pytest.mark.parametrize("lines", [1, 30])
def test_generated_invoice_passes_the_default_french_rules(syntax: str, lines: int) -> None:
    report = facturflow.validate(generate(lines, syntax, seed=lines))
    assert report.profile == "en16931"
    assert [layer.artefact for layer in report.layers if not layer.ran] == []
    assert report.fatal == (), [f"{f.rule}: {f.message}" for f in report.fatal]
    assert any(layer.artefact.startswith("BR-FR") for layer in report.layers)


def test_quick_large_invoice_step_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--quick", "--only", "large", "--no-java", "--sizes", "3,12"]) == 0
    out = capsys.readouterr().out
    assert "== 3. large invoices" in out
    assert "growth exponent" in out
    assert "NOT VALID" not in out


@pytest.mark.skipif(
    not (shutil.which("javac") and any(j.exists() for j in SAXON_JARS)),
    reason="needs a JDK and Debian's libsaxonhe-java (the benchmark runner installs it)",
)
def test_java_reference_harness_runs_one_document(tmp_path: Path) -> None:
    from facturflow.detection import detect as detect_document
    from facturflow.rules import DEFAULT_RULE_SETS, plan

    doc = tmp_path / "one.xml"
    doc.write_bytes(generate(2, "cii"))
    steps, _ = plan(detect_document(doc), DEFAULT_RULE_SETS)
    sheets = [s.artefact.path for s in steps if s.layer == "schematron"]
    result = run_reference(
        [(doc, sheets)],
        threads=1,
        warmup_seconds=0,
        min_warmup_passes=0,
        repeat=1,
        workdir=tmp_path,
        timeout=600,
    )
    assert result.raw["documents"] == 1
    assert result.raw["timed_transforms"] == len(sheets)
    assert result.raw["timed_failed_asserts"] == 0
    assert result.raw["runtime_errors"] == {}


def test_java_reference_harness_alternates_passes_on_request(tmp_path: Path) -> None:
    from benchmarks.reference import InteractiveReference

    from facturflow.artefacts import builtin

    doc = tmp_path / "one.xml"
    doc.write_bytes(generate(2, "ubl"))
    sheet = builtin("sch-en16931-ubl").path
    harness = InteractiveReference(
        [(doc, [sheet])], threads=1, warmup_seconds=0, min_warmup_passes=1, workdir=tmp_path
    )
    try:
        assert harness.warm["warm"] is True and harness.warm["warmup_passes"] >= 1
        passes = [harness.one_pass() for _ in range(2)]
        assert all(wall > 0 and cpu >= 0 for wall, cpu in passes)
        result = harness.finish()
    finally:
        harness.close()
    assert result.raw["pass_seconds"] == [wall for wall, _ in passes]
    assert result.raw["timed_transforms"] == 2 and result.raw["timed_failed_asserts"] == 0
    assert result.raw["peak_rss_mb"] > 0


def test_memory_tool_measures_batch_workers() -> None:
    fixtures = REPO / "fixtures" / "valid"
    files = [fixtures / "fr-invoice-ubl-en16931.xml", fixtures / "fr-invoice-en16931.xml"]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--pool", "2", "40", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["mode"] == "pool" and data["validations"] == 40 and data["invalid_reports"] == 0
    assert data["syntaxes"] == ["cii", "ubl"]
    assert data["workers"] and all(w["peak_rss_mb"] > 50 for w in data["workers"])


def test_ab_tool_compares_a_rewrite_on_and_off(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import ab

    assert ab.main(["rewrite", "path-dispatch", "sch-fx-minimum", "--lines", "3",
                    "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "identical SVRL on 1" in out and "change with path-dispatch" in out
