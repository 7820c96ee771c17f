"""The HTML report: self-contained (nothing fetched), every file and grouped finding in it,
filter controls for severity and rule, French or English labels, fast on a large batch.

Not yet: the issue's real headless-browser test (rendering, console errors, filtering, a
structural screenshot comparison); no browser is installed here. The structure the filtering
script relies on is checked instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lxml import html as lxml_html

from facturflow.reports import render
from facturflow.validate.report import Finding, Location, Report

REPO = Path(__file__).resolve().parents[2]


def _doc(reports: list[Report], lang: str = "en") -> lxml_html.HtmlElement:
    return lxml_html.document_fromstring(render(reports, "html", lang=lang))


def test_html_is_self_contained(reports: list[Report]) -> None:
    text = render(reports, "html")
    doc = lxml_html.document_fromstring(text)
    # No external resource of any kind; a CSP that forbids them anyway.
    for element in doc.iter():
        for attribute in ("src", "href"):
            value = element.get(attribute)
            if value is not None:
                assert value.startswith("#"), (element.tag, value)
    assert not doc.xpath("//link") and not doc.xpath("//script[@src]")
    csp = doc.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")[0]
    assert "default-src 'none'" in csp
    assert "http://" not in text and "https://" not in text


def test_html_has_a_summary_row_and_a_section_per_file(reports: list[Report]) -> None:
    doc = _doc(reports)
    rows = doc.xpath("//table[@id='files']/tr[@data-verdict]")
    assert [r.xpath("string(td[1])") for r in rows] == [r.path for r in reports]
    assert [r.get("data-verdict") for r in rows] == [
        "valid", "invalid", "invalid", "unreadable", "invalid"
    ]
    sections = doc.xpath("//section[@data-verdict]")
    assert len(sections) == len(reports)
    # Every row links to its section.
    for row, section in zip(rows, sections, strict=True):
        assert row.xpath("td[1]/a/@href")[0] == "#" + section.get("id")


def test_html_groups_findings_with_filter_attributes(reports: list[Report]) -> None:
    doc = _doc(reports)
    findings = doc.xpath("//div[contains(@class,'finding')]")
    assert {f.get("data-severity") for f in findings} == {"fatal", "warning", "information"}
    br_co_10 = [f for f in findings if f.get("data-rule") == "BR-CO-10"]
    assert len(br_co_10) == 1 and "×2" in br_co_10[0].text_content()
    assert "hint: Set BT-106" in br_co_10[0].text_content()
    # The controls the script reads: a checkbox per severity, an option per rule seen.
    boxes = doc.xpath("//input[@data-severity]/@data-severity")
    assert boxes == ["fatal", "warning", "information"]
    options = doc.xpath("//select[@id='rule-filter']/option/@value")
    assert options[0] == "" and "BR-CO-10" in options


def test_html_escapes_invoice_content() -> None:
    evil = Report("<script>alert(1)</script>.xml", "xml", "cii", "en16931", findings=(
        Finding("schematron", "BR-1", "fatal", "<img src=x onerror=alert(1)>",
                Location("/a[1]", 1)),))
    text = render([evil], "html")
    assert "<script>alert(1)</script>" not in text and "<img src=x" not in text
    assert len(lxml_html.document_fromstring(text).xpath("//script")) == 1  # only ours


def test_html_in_french(reports: list[Report]) -> None:
    doc = _doc(reports, "fr")
    assert doc.get("lang") == "fr"
    assert "Rapport de validation facturflow" in doc.xpath("string(//h1)")
    assert "conseil: Renseigner BT-106" in doc.text_content()


def test_html_for_a_thousand_files_is_fast(reports: list[Report]) -> None:
    batch = [reports[i % len(reports)] for i in range(1000)]
    start = time.perf_counter()
    text = render(batch, "html")
    assert time.perf_counter() - start < 2.0
    assert text.count("<section ") == 1000


def test_cli_writes_html_beside_other_reports(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", "validate", "--lang", "fr",
         "fixtures/invalid/br-co-10-line-sum.xml", "fixtures/valid/fr-invoice-en16931.xml",
         "--report", f"html:{tmp_path / 'r.html'}", "--report", f"json:{tmp_path / 'r.json'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 1, result.stderr
    doc = lxml_html.document_fromstring((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert doc.xpath("//div[@data-rule='BR-CO-10']")
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["files"] == 2
