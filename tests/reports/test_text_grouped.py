"""The grouped text report: golden outputs (hand-built reports, the project fixtures, a few
corpus files), grouping, ordering, --summary, -q and the batch table.

Regenerate the golden files after an intended change with FACTURFLOW_UPDATE_GOLDEN=1 and review
the diff: they are what a user reads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from facturflow.reports import render
from facturflow.reports.text import TOP_RULES
from facturflow.validation.report import Finding, Location, Report

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
GOLDEN = Path(__file__).parent / "golden"
AS_OF = "2026-12-01"  # the French rules build does not follow the day the test runs
CORPUS_FILES = (
    "invalid/caslim-CALC-002.pdf",
    "facturx/mustang-Facture_F20180027.pdf",
    "cii/mustang-01.01a-INVOICE_uncefact.xml",
)


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FACTURFLOW_UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with FACTURFLOW_UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(encoding="utf-8")


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
        env=env,
    )


# --- golden outputs ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "summary", "quiet"])
def test_golden_hand_built_reports(mode: str, reports: list[Report]) -> None:
    check_golden(f"hand-built-{mode}.txt", render(reports, "text", text_mode=mode))


def test_golden_project_fixtures() -> None:
    result = run(FIXTURES, "validate", "--as-of", AS_OF, "--jobs", "2", "invalid", "valid")
    assert result.returncode == 2, result.stderr  # unreadable inputs are among them
    assert "Traceback" not in result.stderr
    check_golden("fixtures.txt", result.stdout)


def test_golden_corpus_files(corpus: Path) -> None:
    missing = [name for name in CORPUS_FILES if not (corpus / name).is_file()]
    if missing:
        pytest.skip(f"corpus files not found: {', '.join(missing)}")
    result = run(corpus, "validate", "--as-of", AS_OF, "--jobs", "2", *CORPUS_FILES)
    assert result.returncode == 1, result.stderr
    check_golden("corpus.txt", result.stdout)


# --- grouping and order -----------------------------------------------------------------


def _repeated(count: int) -> Report:
    findings = tuple(
        Finding(
            "schematron",
            "FX-NOT-USED",
            "warning",
            "Attribute @currencyID' marked as not used in the given context.",
            Location(f"/rsm:CrossIndustryInvoice/ram:Amount[{n}]", 100 + n),
        )
        for n in range(1, count + 1)
    )
    return Report("many.xml", "xml", "cii", "en16931", findings=findings)


def test_one_rule_many_times_is_one_message_with_a_count_and_every_location() -> None:
    out = render([_repeated(17)], "text")
    assert out.count("marked as not used") == 1
    header = next(line for line in out.splitlines() if "FX-NOT-USED" in line)
    assert header.rstrip().endswith("x17")
    for n in range(1, 18):
        assert f"/rsm:CrossIndustryInvoice/ram:Amount[{n}], line {100 + n}" in out
    # Far shorter than one block per finding (the old report: 3 lines each).
    assert len(out.splitlines()) < 17 * 2


def test_fatal_first_then_by_layer_order() -> None:
    findings = (
        Finding("schematron", "BR-W", "warning", "w"),
        Finding("pdf", "FX-PDF", "fatal", "p"),
        Finding("schematron", "BR-F", "fatal", "s"),
        Finding("xsd", "XSD", "fatal", "x"),
        Finding("selection", "RULES-NOT-IN-SCOPE", "information", "i"),
    )
    out = render([Report("a.pdf", "pdf", "cii", "en16931", findings=findings)], "text")
    order = [line.split()[1] for line in out.splitlines() if line.startswith("  ") and
             line.split()[0] in ("fatal", "warning", "information")]
    assert order == ["XSD", "BR-F", "FX-PDF", "BR-W", "RULES-NOT-IN-SCOPE"]


def test_a_pdf_finding_line_names_the_embedded_xml() -> None:
    finding = Finding("schematron", "BR-01", "fatal", "m", Location("/a", 101))
    report = Report("inv.pdf", "pdf", "cii", "en16931", findings=(finding,),
                    attachment="factur-x.xml")
    assert "at /a, line 101 of the embedded factur-x.xml" in render([report], "text")
    xml = Report("inv.xml", "xml", "cii", "en16931", findings=(finding,))
    assert "at /a, line 101\n" in render([xml], "text")


def test_batch_table_lists_verdicts_and_at_most_ten_rules() -> None:
    reports = [
        Report(f"f{n}.xml", "xml", "cii", "en16931",
               findings=tuple(Finding("schematron", f"BR-{k:02}", "fatal", "m")
                              for k in range(n + 1)))
        for n in range(TOP_RULES + 3)
    ]
    lines = render(reports, "text", text_mode="summary").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rule "))
    rows = [line for line in lines[start + 1:] if line.startswith("BR-")]
    assert len(rows) == TOP_RULES
    # BR-00 is in every file: the most frequent first, with its file and finding counts.
    assert rows[0].split() == ["BR-00", "fatal", str(TOP_RULES + 3), str(TOP_RULES + 3)]
    assert any(line.split() == ["invalid", str(TOP_RULES + 3)] for line in lines)


def test_one_file_has_no_batch_table() -> None:
    out = render([_repeated(2)], "text")
    assert "verdict" not in out


def test_summary_is_one_line_per_file(reports: list[Report]) -> None:
    lines = render(reports, "text", text_mode="summary").splitlines()
    per_file = lines[: len(reports)]
    assert [line.split(":")[0] for line in per_file] == [r.path for r in reports]
    assert "3 fatal, 1 warning, 1 information: XSD, BR-CO-10" in per_file[1]
    assert lines[-1].startswith("5 files: 1 valid, 3 invalid, 1 unreadable")


def test_quiet_lists_only_files_that_are_not_valid(reports: list[Report]) -> None:
    out = render(reports, "text", text_mode="quiet")
    assert [line.split(":")[0] for line in out.splitlines()] == [
        r.path for r in reports if not r.ok
    ]
    assert render([reports[0]], "text", text_mode="quiet") == ""


# --- through the command line ------------------------------------------------------------


def test_cli_summary_and_quiet() -> None:
    args = ("validate", "--as-of", AS_OF, "invalid/br-co-10-line-sum.xml",
            "valid/fr-invoice-en16931.xml")
    summary = run(FIXTURES, *args, "--summary")
    assert summary.returncode == 1, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0].startswith("invalid/br-co-10-line-sum.xml: INVALID") and "BR-CO-10" in lines[0]
    assert lines[1].startswith("valid/fr-invoice-en16931.xml: VALID")
    assert "verdict" in summary.stdout and lines[-1].startswith("2 files:")
    quiet = run(FIXTURES, *args, "-q")
    assert quiet.returncode == 1
    assert quiet.stdout.splitlines() == [lines[0]]
    clean = run(FIXTURES, "validate", "--as-of", AS_OF, "-q", "valid/fr-invoice-en16931.xml")
    assert clean.returncode == 0 and clean.stdout == ""
    both = run(FIXTURES, "validate", "-q", "--summary", "valid/fr-invoice-en16931.xml")
    assert both.returncode == 2 and "--summary and --quiet" in both.stderr


# --- values of the business terms ------------------------------------------------------------


def test_describe_term_reads_single_summed_listed_and_absent_terms() -> None:
    from facturflow.reports.values import describe_term

    data = {
        "BG-22": {"BT-106": "1200.00"},
        "BG-25": [{"BT-131": "1000.00", "BT-129": "2"}, {"BT-131": "250.00", "BT-129": "1"}],
        "BG-4": {"BT-30": {"value": "732048152", "scheme": "0002"}},
    }
    assert describe_term(data, "BT-106") == "BT-106 = 1200.00"
    assert describe_term(data, "BT-131") == "sum of BT-131 = 1250.00 (2 values)"
    assert describe_term(data, "BT-129") == "BT-129 = 2, 1"  # not a sum: quantities
    assert describe_term(data, "BT-30") == "BT-30 = 732048152 (scheme 0002)"
    assert describe_term(data, "BT-107") == "BT-107 absent"


def test_a_finding_shows_the_values_of_its_terms_read_from_the_invoice() -> None:
    from facturflow import validate

    report = validate(FIXTURES / "invalid" / "br-co-10-line-sum.xml", as_of=AS_OF)
    out = render([report], "text")
    assert "values: BT-106 = 1407.00; sum of BT-131 = 1417.00 (3 values)" in out
    assert "values:" not in render([report], "text", text_mode="summary")
    from facturflow.reports.text import render as text_render

    assert "values:" not in text_render([report], values=False)


def test_cli_shows_the_values() -> None:
    result = run(REPO, "validate", "--as-of", AS_OF, "fixtures/invalid/br-co-10-line-sum.xml")
    assert result.returncode == 1
    assert "values: BT-106 = 1407.00; sum of BT-131 = 1417.00 (3 values)" in result.stdout


# --- fix hints ------------------------------------------------------------------------------


def test_every_hint_is_given_in_french_and_english() -> None:
    from facturflow.reports.hints import hints

    table = hints()
    assert len(table) >= 15
    for rule, entry in table.items():
        assert set(entry) == {"en", "fr"}, rule
        assert entry["en"].strip() and entry["fr"].strip() and entry["en"] != entry["fr"], rule


def test_hint_follows_lang_and_the_official_message_stays() -> None:
    finding = Finding("schematron", "BR-CO-10", "fatal", "[BR-CO-10]-Sum of Invoice line ...")
    report = Report("a.xml", "xml", "cii", "en16931", findings=(finding,))
    english = render([report], "text")
    french = render([report], "text", lang="fr")
    assert "hint: Set BT-106" in english and "conseil:" not in english
    assert "conseil: Renseigner BT-106" in french and "hint:" not in french
    assert "[BR-CO-10]-Sum of Invoice line ..." in english and "[BR-CO-10]-Sum" in french
    info = Finding("schematron", "BR-CO-10", "information", "m")
    quiet = render([Report("b.xml", "xml", "cii", "en16931", findings=(info,))], "text")
    assert "hint:" not in quiet


def test_cli_lang_fr() -> None:
    result = run(REPO, "validate", "--as-of", AS_OF, "--lang", "fr",
                 "fixtures/invalid/br-co-10-line-sum.xml")
    assert result.returncode == 1
    assert "conseil: Renseigner BT-106" in result.stdout
    bad = run(REPO, "validate", "--lang", "de", "fixtures/invalid/br-co-10-line-sum.xml")
    assert bad.returncode == 2


# --- business-term paths ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xpath", "terms", "expected"),
    [
        ("/*:CrossIndustryInvoice[namespace-uri()='urn:x'][1]/*:SupplyChainTransaction"
         "[namespace-uri()='urn:x'][1]/*:IncludedSupplyChainTradeLineItem"
         "[namespace-uri()='urn:x'][3]/*:SpecifiedLineTradeSettlement[1]", ("BT-131",),
         "BG-25[3] / BT-131"),
        ("/Invoice[1]/AccountingSupplierParty[1]/Party[1]/PostalAddress[1]", ("BT-35",),
         "BG-4 / BG-5 / BT-35"),
        ("/Invoice[1]/AccountingCustomerParty[1]/Party[1]/Contact[1]", (), "BG-7 / BG-9"),
        ("/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction/ram:Applicable"
         "HeaderTradeSettlement/ram:SpecifiedTradeSettlementHeaderMonetarySummation",
         ("BT-106", "BT-131"), "BG-22"),
        ("/Invoice[1]/TaxTotal[1]/TaxSubtotal[2]", ("BT-117",), "BG-23[2] / BT-117"),
        ("/CrossIndustryInvoice[1]", ("BT-30",), None),
        (None, ("BT-30",), None),
    ],
)
def test_term_path(xpath: str | None, terms: tuple[str, ...], expected: str | None) -> None:
    from facturflow.reports.termpath import term_path

    assert term_path(xpath, terms) == expected


def test_text_location_shows_the_term_path_before_the_xpath() -> None:
    finding = Finding("schematron", "BR-X", "fatal", "m",
                      Location("/Invoice[1]/InvoiceLine[3]/LineExtensionAmount[1]", 195),
                      business_terms=("BT-131",))
    report = Report("f.pdf", "pdf", "ubl-invoice", "en16931", findings=(finding,),
                    attachment="factur-x.xml")
    assert (
        "at BG-25[3] / BT-131 — /Invoice[1]/InvoiceLine[3]/LineExtensionAmount[1], "
        "line 195 of the embedded factur-x.xml" in render([report], "text")
    )
