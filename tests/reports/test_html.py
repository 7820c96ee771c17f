"""The HTML report: self-contained (nothing fetched, a CSP by hash), every file in a summary
table and a block, each invoice's key data with each finding pinned beside the line, party or
total it concerns (values and fix hint shown), filter controls, French or English labels,
hostile invoice content kept as text.

The page in a real browser (rendering, console, network, filtering, screenshot) is
tests/reports/test_html_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import html as lxml_html

from facturflow.reports import html as html_report
from facturflow.reports import render
from facturflow.validation import validate, validate_many
from facturflow.validation.report import Finding, Location, Report

REPO = Path(__file__).resolve().parents[2]
VALID = REPO / "fixtures/valid/fr-invoice-en16931.xml"
CII_LINE = (
    "/*:CrossIndustryInvoice[namespace-uri()='urn:un:unece:uncefact:data:standard:"
    "CrossIndustryInvoice:100'][1]/*:SupplyChainTradeTransaction[namespace-uri()='urn:un:"
    "unece:uncefact:data:standard:CrossIndustryInvoice:100'][1]/*:IncludedSupplyChainTradeLine"
    "Item[namespace-uri()='urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100'][{n}]"
)


def _doc(reports: list[Report], lang: str = "en") -> lxml_html.HtmlElement:
    return lxml_html.document_fromstring(render(reports, "html", lang=lang))


def _line2_invoice(tmp_path: Path) -> Path:
    """The valid fixture with line 2's VAT rate set to 0: BR-S-05 on line 2, BR-S-08 on the
    VAT breakdown."""
    lines = VALID.read_text(encoding="utf-8").split("\n")
    assert "RateApplicablePercent>20.00<" in lines[75]
    lines[75] = lines[75].replace("20.00", "0.00")
    path = tmp_path / "line2.xml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_html_is_self_contained(reports: list[Report]) -> None:
    text = render(reports, "html")
    doc = lxml_html.document_fromstring(text)
    # No external resource of any kind; a CSP that forbids them anyway.
    for element in doc.iter():
        for attribute in ("src", "href", "action"):
            value = element.get(attribute)
            if value is not None:
                assert value.startswith("#"), (element.tag, value)
    assert not doc.xpath("//link") and not doc.xpath("//script[@src]")
    assert "http://" not in text and "https://" not in text
    csp = doc.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")[0]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    # The only style and script are allowed by their hash, so nothing else inline runs.
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        (body,) = [e.text for e in doc.xpath(f"//{tag}")]
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    # No inline event handler attribute either (the CSP would block it).
    assert not [a for e in doc.iter() for a in e.attrib if a.startswith("on")]


def test_html_has_a_summary_row_and_a_block_per_file(reports: list[Report]) -> None:
    doc = _doc(reports)
    rows = doc.xpath("//table[@id='files']//tr[@data-verdict]")
    assert [r.xpath("string(td[1])") for r in rows] == [r.path for r in reports]
    assert [r.get("data-verdict") for r in rows] == [
        "valid", "invalid", "invalid", "unreadable", "invalid"
    ]
    blocks = doc.xpath("//details[@data-verdict]")
    assert len(blocks) == len(reports)
    # Every row links to its block; a small batch opens every block.
    for row, block in zip(rows, blocks, strict=True):
        assert row.xpath("td[1]/a/@href")[0] == "#" + block.get("id")
        assert block.get("open") is not None


def test_html_groups_findings_with_filter_attributes(reports: list[Report]) -> None:
    doc = _doc(reports)
    findings = doc.xpath("//div[contains(@class,'finding')]")
    assert {f.get("data-severity") for f in findings} == {"fatal", "warning", "information"}
    br_co_10 = [f for f in findings if f.get("data-rule") == "BR-CO-10"]
    assert len(br_co_10) == 1 and "×2" in br_co_10[0].text_content()
    assert br_co_10[0].get("data-count") == "2"
    assert "hint: Set BT-106" in br_co_10[0].text_content()
    # The controls the script reads: a checkbox per severity, an option per rule seen; the
    # form stays hidden until the script shows it (without it, everything is shown).
    boxes = doc.xpath("//input[@data-severity]/@data-severity")
    assert boxes == ["fatal", "warning", "information"]
    options = doc.xpath("//select[@id='rule-filter']/option/@value")
    assert options[0] == "" and "BR-CO-10" in options
    assert doc.xpath("//form[@id='filters']/@hidden") == [""]


def test_findings_are_pinned_next_to_what_they_concern(tmp_path: Path) -> None:
    path = _line2_invoice(tmp_path)
    report = validate(path)
    assert {"BR-S-05", "BR-S-08"} <= report.failed_rules("fatal")
    doc = _doc([report])
    block = doc.xpath("//details[@id='file-0']")[0]
    # The key data: number, parties, lines, totals, as `facturflow render` words them.
    assert "Invoice No. F2026-0042" in block.xpath("string(.//h3)")
    assert "Atelier Lumen Verre SAS" in block.text_content()
    assert "Brasserie du Canal SARL" in block.text_content()
    assert len(block.xpath(".//table[thead/tr/th='Net amount']/tbody/tr[not(@class='pins')]")) == 3
    assert block.xpath(".//table[@class='totals']")
    # BR-S-05 (BG-25[2]) in a row right under line 2, with line 2's values only.
    (pin,) = block.xpath(".//tr[@class='pins']")
    line = pin.getprevious()
    assert line.get("class") == "flagged" and line.xpath("string(td[1])") == "2"
    assert [f.get("data-rule") for f in pin.xpath(".//div[@data-rule]")] == ["BR-S-05"]
    assert "values: BT-151 = S; BT-152 = 0.00" in pin.text_content()
    # BR-S-08 (BT-119, the VAT breakdown) right after the VAT breakdown table.
    (vat,) = block.xpath(".//div[@data-rule='BR-S-08']")
    heading = vat.getparent().getprevious().getprevious()
    assert heading.tag == "h4" and heading.text.startswith("VAT breakdown")
    assert "sum of BT-131 = 1417.00 (3 values)" in vat.text_content()
    assert "hint: For each standard VAT rate" in vat.text_content()
    # The rule-set notes (no business term) in the general block at the top.
    general = block.xpath(".//div[@class='general']")[0]
    assert {f.get("data-rule") for f in general.xpath(".//div[@data-rule]")} == {
        "RULES-NOT-IN-SCOPE"
    }


def test_totals_finding_is_pinned_under_the_totals() -> None:
    report = validate(REPO / "fixtures/invalid/br-co-10-line-sum.xml")
    doc = _doc([report])
    (finding,) = doc.xpath("//div[@data-rule='BR-CO-10']")
    totals = finding.getparent().getprevious()
    assert totals.tag == "table" and totals.get("class") == "totals"
    assert "values: BT-106 = 1407.00; sum of BT-131 = 1417.00 (3 values)" in (
        finding.text_content())


@pytest.mark.parametrize(
    ("xpath", "terms", "expected"),
    [
        (CII_LINE.format(n=3) + "/*:SpecifiedLineTradeAgreement[1]", ("BT-146",), "line:3"),
        ("/Invoice[1]/InvoiceLine[12]/Item[1]", ("BT-153",), "line:12"),
        ("/Invoice[1]/AccountingSupplierParty[1]/Party[1]", ("BT-31",), "seller"),
        (None, ("BT-30",), "seller"),
        (None, ("BT-48",), "buyer"),
        ("/Invoice[1]/LegalMonetaryTotal[1]", ("BT-106", "BT-131"), "totals"),
        (None, ("BT-116", "BT-131"), "vat"),
        (None, ("BT-1",), "header"),
        (None, ("BT-84",), "payment"),
        (None, ("BG-25", "BT-131"), "lines"),
        ("/CrossIndustryInvoice[1]", (), "general"),
        (None, (), "general"),
    ],
)
def test_anchor_of_a_finding(xpath: str | None, terms: tuple[str, ...], expected: str) -> None:
    finding = Finding("schematron", "R", "fatal", "m", Location(xpath, 1), business_terms=terms)
    assert html_report.anchor(finding) == expected


def test_a_finding_whose_line_is_not_there_goes_to_the_lines() -> None:
    report = Report(str(VALID), "xml", "cii", "en16931", findings=(
        Finding("schematron", "BR-X", "fatal", "line 9 of 3",
                Location(CII_LINE.format(n=9), 1), business_terms=("BT-131",)),))
    doc = _doc([report])
    (finding,) = doc.xpath("//div[@data-rule='BR-X']")
    heading = finding.getparent().getprevious().getprevious()
    assert heading.text.startswith("Invoice lines")


def test_html_escapes_invoice_content() -> None:
    evil = Report("<script>alert(1)</script>.xml", "xml", "cii", "en16931", findings=(
        Finding("schematron", "BR-1", "fatal", "<img src=x onerror=alert(1)>",
                Location("/a[1]", 1)),))
    text = render([evil], "html")
    assert "<script>alert(1)</script>" not in text and "<img src=x" not in text
    assert len(lxml_html.document_fromstring(text).xpath("//script")) == 1  # only ours


HOSTILE_NAME = '<script>alert("x")</script>\'"&amp; \u202eRTL\u202c שלום ' + "W" * 3000


def hostile_invoice(folder: Path) -> Path:
    """The valid fixture with a seller name and a line name that try every trick, saved under
    a file name with a bidi override and markup."""
    xml = VALID.read_text(encoding="utf-8")
    escaped = (HOSTILE_NAME.replace("&", "&amp;").replace("<", "&lt;")
               .replace(">", "&gt;").replace('"', "&quot;"))
    xml = xml.replace("Atelier Lumen Verre SAS", escaped, 1)
    xml = xml.replace("Heures de restauration", "<![CDATA[</td></tr><b onclick=x>]]>", 1)
    path = folder / "evil<b>\u202egnp.xml"
    path.write_text(xml, encoding="utf-8")
    return path


def test_hostile_invoice_content_stays_text(tmp_path: Path) -> None:
    path = hostile_invoice(tmp_path)
    report = validate(path)
    text = render([report], "html")
    doc = lxml_html.document_fromstring(text)
    # Exactly our script and style; no element the invoice tried to add.
    assert len(doc.xpath("//script")) == 1 and len(doc.xpath("//style")) == 1
    assert not doc.xpath("//b[@onclick]") and not doc.xpath("//*[@onclick]")
    # The texts are there, as text: the seller name whole (isolated for right-to-left), the
    # line's CDATA content, and the file name with its bidi override made visible.
    names = [e.text_content() for e in doc.xpath("//p[@class='name']/bdi")]
    assert HOSTILE_NAME in names
    assert "</td></tr><b onclick=x>" in doc.text_content()
    assert "evil<b><U+202E>gnp.xml" in doc.xpath("string(//table[@id='files']//td[1])")
    assert "\u202e" not in doc.xpath("string(//table[@id='files']//td[1])")
    # Control characters and lone surrogates (undecodable file names) never reach the page.
    odd = Report("bad\udcff\x07name.xml", "xml", "cii", "en16931")
    page = render([odd], "html")
    page.encode("utf-8")  # no lone surrogate left
    assert "\x07" not in page and "bad\ufffd\ufffdname.xml" in page


def test_unreadable_and_stdin_have_no_key_data(named: dict[str, Report]) -> None:
    stdin = Report("<stdin>", "xml", "cii", "en16931", findings=(
        Finding("schematron", "BR-CO-10", "fatal", "m", Location(None, 1), business_terms=(
            "BT-106",)),))
    doc = _doc([named["unreadable"], stdin])
    assert "not well-formed XML" in doc.xpath("string(//details[@id='file-0'])")
    block = doc.xpath("//details[@id='file-1']")[0]
    assert not block.xpath(".//div[@class='invoice']")
    assert "Key data not shown: it came from standard input" in block.text_content()
    assert block.xpath(".//div[@class='general']//div[@data-rule='BR-CO-10']")


def test_html_in_french(reports: list[Report]) -> None:
    doc = _doc(reports, "fr")
    assert doc.get("lang") == "fr"
    assert "Rapport de validation facturflow" in doc.xpath("string(//h1)")
    assert "conseil: Renseigner BT-106" in doc.text_content()
    assert doc.xpath("//table[@id='files']//th[1]/text()") == ["Fichier"]


def test_key_data_in_french_and_english() -> None:
    report = validate(REPO / "fixtures/invalid/br-co-10-line-sum.xml")
    french, english = _doc([report], "fr"), _doc([report], "en")
    assert "Facture N° F2026-0042" in french.xpath("string(//h3)")
    assert french.xpath("//div[@class='parties']//h4/text()") == ["Vendeur", "Acheteur"]
    assert english.xpath("//div[@class='parties']//h4/text()") == ["Seller", "Buyer"]
    assert "Net à payer" in french.text_content() and "Amount due" in english.text_content()
    assert "bloquant" in french.xpath("string(//div[@data-rule='BR-CO-10']/span)").lower()


def test_workers_give_the_same_page() -> None:
    files = sorted(str(p) for p in (REPO / "fixtures").glob("*/*.xml"))
    reports = list(validate_many(files, jobs=1))
    batch = (reports * (html_report.PARALLEL_FROM // len(reports) + 1))[:html_report.PARALLEL_FROM]
    assert render(batch, "html") == html_report.render(batch, workers=1)
    assert html_report.render(batch, workers=2) == html_report.render(batch, workers=1)


def test_a_large_batch_collapses_its_files(reports: list[Report]) -> None:
    batch = [reports[i % len(reports)] for i in range(html_report.OPEN_UP_TO + 1)]
    doc = _doc(batch)
    assert not doc.xpath("//details[@open]")


def test_html_for_a_thousand_files_renders_them_all(reports: list[Report]) -> None:
    # The speed on a real 1,000-file batch is measured by benchmarks/html_bench.py.
    batch = [reports[i % len(reports)] for i in range(1000)]
    start = time.perf_counter()
    text = render(batch, "html")
    assert time.perf_counter() - start < 10.0  # a guard against a pathology, not the figure
    assert text.count('<details class="file"') == 1000
    assert len(re.findall(r'<tr data-verdict="', text)) == 1000


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
    (finding,) = doc.xpath("//div[@data-rule='BR-CO-10']")
    assert finding.getparent().getprevious().get("class") == "totals"
    assert "Vendeur" in doc.text_content()
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["files"] == 2


def test_summary_table_shows_paths_under_the_batch_folder() -> None:
    reports = [Report(f"/data/in/{name}", "xml", "cii", "en16931")
               for name in ("a/one.xml", "b/two.xml")]
    doc = _doc(reports)
    assert doc.xpath("string(//p[@id='folder']/code)") == "/data/in/"
    links = doc.xpath("//table[@id='files']//td[1]/a")
    assert [a.text for a in links] == ["a/one.xml", "b/two.xml"]
    assert [a.get("title") for a in links] == [r.path for r in reports]
    # The blocks keep the whole path.
    assert doc.xpath("string(//details[@id='file-1']//span[@class='path'])") == "/data/in/b/two.xml"
    assert html_report.common_folder(["x.xml", "/abs/y.xml"]) == ""
    assert html_report.common_folder(["/one/x.xml"]) == ""


def test_without_worker_processes_the_page_is_written_here(
    reports: list[Report], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [reports[i % len(reports)] for i in range(html_report.PARALLEL_FROM)]
    expected = html_report.render(batch, workers=1)

    class NoProcesses:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise OSError("no processes in this sandbox")

    monkeypatch.setattr(html_report, "ProcessPoolExecutor", NoProcesses)
    assert html_report.render(batch, workers=2) == expected


def test_a_huge_invoice_text_is_cut_so_the_page_stays_openable(tmp_path: Path) -> None:
    # A 1 MB note (one unbroken word) took Chromium about 100 s to lay out: invoice text is
    # shown up to a bound, and the page says how much was left out.
    xml = VALID.read_text(encoding="utf-8")
    note = "Indemnite forfaitaire pour frais de recouvrement en cas de retard : 40 EUR."
    assert note in xml
    xml = xml.replace(note, "Z" * 1_000_000, 1)
    path = tmp_path / "huge-note.xml"
    path.write_text(xml, encoding="utf-8")
    page = render([validate(path)], "html")
    assert len(page) < 100_000
    shown = max(re.findall("Z+", page), key=len)
    assert 1_000 <= len(shown) < 1_000_000
    assert f"\u2026[+{1_000_000 - len(shown):,}]" in page
