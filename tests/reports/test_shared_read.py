"""One reading of each invoice per run for every report (text, JSON, SARIF, JUnit and HTML share
facturflow.reports.values.read_model), a validated PDF read again from its named attachment
alone (no qpdf structure check: the validation ran it), and the line of a PDF's finding said in
the report's language."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from facturflow import pdf as pdf_module
from facturflow.cli import main
from facturflow.detection import detect, detect_embedded
from facturflow.errors import MalformedPDFError, NoInvoiceInPDFError
from facturflow.reports import html as html_report
from facturflow.reports import render, values
from facturflow.validation.report import Finding, Location, Report

REPO = Path(__file__).resolve().parents[2]
PDF = REPO / "fixtures/valid/fr-invoice-en16931.pdf"  # carries factur-x.xml
XML = REPO / "fixtures/invalid/br-co-10-line-sum.xml"
AS_OF = "2026-12-01"
LINE_3 = (
    "/*:CrossIndustryInvoice[namespace-uri()='urn:un:unece:uncefact:data:standard:"
    "CrossIndustryInvoice:100'][1]/*:SupplyChainTradeTransaction[namespace-uri()='x'][1]"
    "/*:IncludedSupplyChainTradeLineItem[namespace-uri()='x'][3]"
)
FORMATS = ("text", "json", "sarif", "junit", "html")
read_module = importlib.import_module("facturflow.reading")


def _pdf_report(path: Path) -> Report:
    """A report of the fixture PDF with a finding on its third line (line 105 of the XML)."""
    return Report(
        str(path), "pdf", "cii", "en16931", attachment="factur-x.xml",
        findings=(Finding("schematron", "BR-24", "fatal", "Line net amount (BT-131).",
                          Location(LINE_3, 105), business_terms=("BT-131",)),),
    )  # fmt: skip


def _xml_report(path: Path) -> Report:
    return Report(
        str(path), "xml", "cii", "en16931",
        findings=(Finding("schematron", "BR-CO-10", "fatal", "Sum of lines (BT-106).",
                          Location("/rsm:CrossIndustryInvoice", 42),
                          business_terms=("BT-106", "BT-131")),),
    )  # fmt: skip


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The inputs read through the EN 16931 model (facturflow.reading.read, whoever calls it) in
    this process, from a cold start."""
    found: list[str] = []
    real = read_module.read

    def counting(source: Any, **options: Any) -> Any:
        found.append(str(getattr(source, "name", source)))
        return real(source, **options)

    values.clear()
    monkeypatch.setattr(read_module, "read", counting)
    yield found
    values.clear()


@pytest.mark.parametrize("order", [FORMATS, tuple(reversed(FORMATS))])
def test_every_report_of_a_run_reads_each_invoice_once(
    order: tuple[str, ...], reads: list[str], tmp_path: Path
) -> None:
    pdf, xml = tmp_path / "a.pdf", tmp_path / "b.xml"
    shutil.copy(PDF, pdf)
    shutil.copy(XML, xml)
    reports = [_pdf_report(pdf), _xml_report(xml)]
    out = {fmt: render(reports, fmt) for fmt in order}
    assert sorted(reads) == [str(pdf), str(xml)]  # one read each, for five reports
    for fmt in ("text", "sarif", "junit"):  # both files' values, from the one reading each
        assert out[fmt].count("sum of BT-131 = 1417.00 (3 values)") >= 2, fmt
        assert "BT-106 = 1407.00" in out[fmt], fmt
    assert {"term": "BT-106", "values": ["1407.00"], "count": 1} in (
        json.loads(out["json"])["files"][1]["findings"][0]["values"]
    )
    doc = lxml_html.document_fromstring(out["html"])
    assert doc.xpath("string(//details[@id='file-1']//table[@class='totals'])")  # key data
    pinned = "string(//tr[@id='file-0-line-3']/following-sibling::tr[1]//p[@class='values'])"
    assert doc.xpath(pinned) == "values: BT-131 = 54.00"  # line 3's own amount


def test_html_workers_send_back_what_the_other_reports_need(tmp_path: Path) -> None:
    """A batch the HTML report reads in worker processes: the text report written after it in
    the same run reads nothing again and shows the values. Run in a fresh interpreter, where
    nothing stops the report from forking (Saxon loaded by another test would)."""
    for n in range(html_report.PARALLEL_FROM):
        shutil.copy(XML, tmp_path / f"{n:02}.xml")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from facturflow.reports import html, render, values
        from facturflow.validation.report import Finding, Location, Report
        import importlib
        module = importlib.import_module("facturflow.reading")
        reads = []
        real = module.read
        module.read = lambda source, **o: reads.append(source) or real(source, **o)
        reports = [
            Report(str(p), "xml", "cii", "en16931", findings=(Finding(
                "schematron", "BR-CO-10", "fatal", "m", Location("/x", 42),
                business_terms=("BT-106", "BT-131")),))
            for p in sorted(Path({str(tmp_path)!r}).glob("*.xml"))
        ]
        assert html._can_fork()
        page = html.render(reports, workers=2)
        text = render(reports, "text")
        print(len(reads), page.count("sum of BT-131 = 1417.00"),
              text.count("sum of BT-131 = 1417.00 (3 values)"))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    count = html_report.PARALLEL_FROM
    # No read in this process (the workers read), every file's values in both reports.
    assert result.stdout.split() == ["0", str(count), str(count)]


def test_one_cli_run_with_five_reports_reads_each_invoice_once(
    reads: list[str], tmp_path: Path
) -> None:
    pdf, xml = tmp_path / "a.pdf", tmp_path / "b.xml"
    shutil.copy(PDF, pdf)
    shutil.copy(XML, xml)
    args = ["validate", "--jobs", "1", "--no-cache", "--as-of", AS_OF, str(pdf), str(xml),
            "--report", "text"]
    for fmt in FORMATS[1:]:
        args += ["--report", f"{fmt}:{tmp_path / ('report.' + fmt)}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert sorted(reads) == [str(pdf), str(xml)]
    assert "sum of BT-131 = 1417.00 (3 values)" in result.output
    assert "sum of BT-131 = 1417.00" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "sum of BT-131 = 1417.00" in (tmp_path / "report.junit").read_text(encoding="utf-8")


def test_reports_read_a_validated_pdf_without_its_structure_check(
    monkeypatch: pytest.MonkeyPatch, reads: list[str]
) -> None:
    checks: list[int] = []
    real = pdf_module.structure_problems

    def counting(data: bytes) -> tuple[str, ...]:
        checks.append(len(data))
        return real(data)

    monkeypatch.setattr(pdf_module, "structure_problems", counting)
    document = detect(PDF)  # detection (and so validation) checks the PDF in full
    assert len(checks) == 1 and document.pdf is not None
    page = render([_pdf_report(PDF)], "html")
    assert reads == [str(PDF)] and len(checks) == 1  # read for the report: no check again
    assert "BT-131 = 54.00" in page
    embedded = detect_embedded(PDF.read_bytes(), name=str(PDF), attachment="factur-x.xml")
    assert embedded.xml == document.xml and embedded.syntax == document.syntax
    assert embedded.pdf is None  # nothing to validate the PDF with: detect() is for that


def test_embedded_file_refuses_what_is_not_there() -> None:
    missing = re.escape("no embedded file named 'order-x.xml'")
    with pytest.raises(NoInvoiceInPDFError, match=missing):
        pdf_module.embedded_file(PDF.read_bytes(), "order-x.xml", source="x.pdf")
    with pytest.raises(MalformedPDFError, match="not a PDF"):
        pdf_module.embedded_file(XML.read_bytes(), "factur-x.xml", source="x.xml")
    broken = PDF.read_bytes()[:2000]
    with pytest.raises((MalformedPDFError, NoInvoiceInPDFError)):
        pdf_module.embedded_file(broken, "factur-x.xml", source="x.pdf")


def test_a_pdf_finding_s_line_is_said_in_the_report_s_language() -> None:
    report = _pdf_report(PDF)
    english = render([report], "text", lang="en")
    french = render([report], "text", lang="fr")
    assert "line 105 of the embedded factur-x.xml" in english
    assert "ligne 105 du fichier incorporé factur-x.xml" in french
    assert "of the embedded" not in french
    page = lxml_html.document_fromstring(render([report], "html", lang="fr"))
    where = page.xpath("string(//div[@data-rule='BR-24']//ul[@class='loc'])")
    assert "ligne 105 du fichier incorporé factur-x.xml" in where
    assert "of the embedded" not in page.text_content()
    english_page = lxml_html.document_fromstring(render([report], "html", lang="en"))
    assert "line 105 of the embedded factur-x.xml" in english_page.text_content()
    # The machine reports keep their (English) wording whatever the language.
    assert "line 105 of the embedded factur-x.xml" in render([report], "junit", lang="fr")


def test_cli_in_french_says_ligne() -> None:
    result = CliRunner().invoke(main, ["validate", "--jobs", "1", "--no-cache", "--as-of",
                                       AS_OF, "--lang", "fr", str(XML)])
    assert result.exit_code == 1, result.output
    assert re.search(r", ligne \d+", result.output)
    assert not re.search(r", line \d+", result.output)


def test_past_the_invoices_kept_a_file_keeps_its_values(
    monkeypatch: pytest.MonkeyPatch, reads: list[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(values, "INVOICES_KEPT", 1)  # memory: only the last Invoice is kept
    first, second = tmp_path / "1.xml", tmp_path / "2.xml"
    shutil.copy(XML, first)
    shutil.copy(XML, second)
    reports = [_xml_report(first), _xml_report(second)]
    text = render(reports, "text")
    assert text.count("BT-106 = 1407.00") == 2 and len(reads) == 2
    # The machine reports still read nothing again: the values outlive the Invoice...
    assert render(reports, "json").count('"1407.00"') == 2 and len(reads) == 2
    # ... and the HTML report, which needs the Invoice for the key data, has the last one and
    # reads the first again.
    render(reports[1:], "html")
    assert len(reads) == 2
    assert "1407.00" in render(reports[:1], "html")
    assert reads[2:] == [str(first)]
