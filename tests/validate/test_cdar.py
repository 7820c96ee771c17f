"""CDAR lifecycle messages (CrossDomainAcknowledgementAndResponse D22B): detected, validated
against the CDAR D22B XSD and the BR-FR-CDV rules, and refused by convert, read and send."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import facturflow
from facturflow import detect, validate, validate_many
from facturflow.errors import NotAnInvoiceError
from facturflow.exitcodes import INVALID, OK, USAGE
from facturflow.validation.report import RULES_NOT_APPLICABLE

from .helpers import FIXTURES, VALID_CII

CDAR = FIXTURES / "cdar"
VALID = CDAR / "valid-deposited.xml"
BAD_XSD = CDAR / "invalid-xsd-unknown-element.xml"
BAD_TYPE = CDAR / "invalid-br-fr-cdv-type-code.xml"
ROWS = list(
    csv.DictReader((CDAR / "MANIFEST.tsv").open(encoding="utf-8", newline=""), delimiter="\t")
)
NOT_AN_INVOICE = "a CDAR lifecycle message, not an invoice"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def applied(report: facturflow.Report) -> dict[str, list[dict[str, object]]]:
    return {item["name"]: item["artefacts"] for item in report.applied_rule_sets()}


# --- fixtures --------------------------------------------------------------------------------


def test_committed_cdar_fixtures_are_what_the_generator_makes() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_fixtures_cdar", FIXTURES / "make_fixtures.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_fixtures_cdar"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    made = {item.path: item for item in module.cdar_fixtures()}
    assert sorted(made) == sorted(row["file"] for row in ROWS)
    assert sorted(p.name for p in CDAR.glob("*.xml")) == sorted(Path(p).name for p in made)
    for path, item in made.items():
        assert (FIXTURES / path).read_bytes() == item.content, f"{path}: run make_fixtures.py"


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_validate_agrees_with_the_cdar_manifest(row: dict[str, str]) -> None:
    report = validate(FIXTURES / row["file"])
    assert (report.syntax, report.profile) == (row["syntax"], row["profile"])
    expected = {rule for rule in row["expected_rules"].split(",") if rule}
    assert report.failed_rules("fatal") == expected
    assert report.ok == (row["expected"] == "valid")


# --- detect ----------------------------------------------------------------------------------


def test_detect_recognises_a_cdar_when_asked_and_refuses_it_as_an_invoice_otherwise() -> None:
    document = detect(VALID, lifecycle=True)
    assert (document.container, document.syntax, document.profile) == ("xml", "cdar", "cdv")
    assert document.spec_id == "urn.cpro.gouv.fr:1p0:CDV:invoice"
    assert document.warnings == ()
    with pytest.raises(NotAnInvoiceError, match=NOT_AN_INVOICE):
        detect(VALID)
    with pytest.raises(NotAnInvoiceError, match=NOT_AN_INVOICE):
        detect(document)  # a detected CDAR handed on to an invoice stage


def test_a_cdar_without_the_french_guideline_is_detected_with_a_warning() -> None:
    xml = VALID.read_bytes().replace(b"urn.cpro.gouv.fr:1p0:CDV:invoice", b"urn:example:other")
    document = detect(xml, lifecycle=True)
    assert (document.syntax, document.profile) == ("cdar", "unknown")
    assert "unknown CDAR guideline 'urn:example:other'" in document.warnings[0]


def test_detect_command_prints_the_cdar() -> None:
    text = run("detect", VALID)
    assert text.returncode == OK, text.stderr
    assert text.stdout.strip() == f"{VALID}: xml cdar cdv"
    as_json = run("detect", "--format", "json", VALID)
    assert json.loads(as_json.stdout) == [
        {"path": str(VALID), "container": "xml", "syntax": "cdar", "profile": "cdv"}
    ]


# --- validate --------------------------------------------------------------------------------


def test_a_valid_cdar_passes_the_cdar_xsd_and_br_fr_cdv_and_names_them() -> None:
    report = validate(VALID, french_rules="fatal")
    assert report.ok, [f"{f.rule}: {f.message}" for f in report.findings]
    assert report.findings == ()
    sets = applied(report)
    assert list(sets) == ["xsd", "cdar"]  # no invoice rules, no PDF rules
    assert report.rule_sets == ("xsd", "cdar")
    (schema,) = sets["xsd"]
    (rules,) = sets["cdar"]
    assert schema["artefact"] == "CrossDomainAcknowledgementAndResponse_100pD22B.xsd"
    assert rules["artefact"] == "BR-FR-CDV-Schematron-CDAR.xslt"
    for artefact in (schema, rules):
        assert artefact["ran"] is True
        assert len(str(artefact["sha256"])) == 64
        assert artefact["version"] and artefact["version"] != "missing"
    assert report.selection is not None
    assert report.selection["french_rules"]["build"] == "fatal"


def test_an_xsd_error_is_a_fatal_xsd_finding() -> None:
    report = validate(BAD_XSD)
    assert not report.ok
    (finding,) = report.fatal
    assert (finding.layer, finding.rule) == ("xsd", "XSD")
    assert "Colour" in finding.message


def test_a_br_fr_cdv_violation_is_reported_by_its_rule_id_fatal_or_warning_by_build() -> None:
    fatal = validate(BAD_TYPE, french_rules="fatal")
    assert not fatal.ok
    assert fatal.failed_rules("fatal") == {"BR-FR-CDV-09_MDT-77"}
    warning = validate(BAD_TYPE, french_rules="warning")
    assert warning.ok
    assert warning.failed_rules("warning") == {"BR-FR-CDV-09_MDT-77"}
    assert [a["artefact"] for a in applied(warning)["cdar"]] == [
        "BR-FR-CDV-Schematron-CDAR_WARNING.xslt"
    ]


def test_rule_names_select_the_cdar_layers_and_fail_closed() -> None:
    only_rules = validate(BAD_TYPE, "fr-cdv")
    assert list(applied(only_rules)) == ["cdar"]
    assert only_rules.failed_rules("fatal") == {"BR-FR-CDV-09_MDT-77"}
    only_xsd = validate(BAD_XSD, "xsd")
    assert list(applied(only_xsd)) == ["xsd"]
    assert only_xsd.failed_rules("fatal") == {"XSD"}
    for rules in ("pdf", "en16931,fr-ctc", "fr"):
        report = validate(VALID, rules)
        assert not report.ok, rules
        (finding,) = report.findings
        assert (finding.rule, finding.severity) == (RULES_NOT_APPLICABLE, "fatal")
        assert "this is a CDAR lifecycle message" in finding.message
    # Named alongside a set that applies: a warning, and the CDAR is still judged.
    mixed = validate(VALID, "cdar,pdf")
    assert mixed.ok
    assert [f.rule for f in mixed.findings] == [RULES_NOT_APPLICABLE]
    # And the other way round: the CDAR rules do not apply to an invoice.
    invoice = validate(VALID_CII, "cdar")
    assert not invoice.ok
    assert "applies to CDAR lifecycle messages only" in invoice.fatal[0].message


def test_invoices_get_no_cdar_layer_by_default() -> None:
    report = validate(VALID_CII)
    assert report.ok
    assert "cdar" not in applied(report) and "cdar" not in report.rule_sets
    assert not any("CDAR" in f.message for f in report.findings)


def test_a_batch_mixing_cdar_and_invoices_judges_each_by_its_kind() -> None:
    reports = {Path(r.path).name: r for r in validate_many([VALID, BAD_TYPE, VALID_CII])}
    assert reports[VALID.name].ok and reports[VALID_CII.name].ok
    assert reports[BAD_TYPE.name].failed_rules("fatal") == {"BR-FR-CDV-09_MDT-77"}
    assert list(applied(reports[VALID.name])) == ["xsd", "cdar"]


def test_hostile_cdar_is_unreadable_as_any_xml_is() -> None:
    laughs = VALID.read_bytes().replace(
        b"<rsm:CrossDomainAcknowledgementAndResponse",
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<rsm:CrossDomainAcknowledgementAndResponse",
        1,
    ).replace(b"<ram:Name>Statut", b"<ram:Name>&b;Statut")
    report = validate(laughs)
    assert not report.ok
    assert report.error is not None
    assert report.syntax is None


def test_validate_command_end_to_end() -> None:
    good = run("validate", VALID)
    assert good.returncode == OK, good.stdout + good.stderr
    assert f"{VALID}: VALID  (xml, cdar, cdv)" in good.stdout
    assert "CrossDomainAcknowledgementAndResponse_100pD22B.xsd sha256:" in good.stdout
    assert "BR-FR-CDV-Schematron-CDAR.xslt sha256:" in good.stdout
    bad = run("validate", "--format", "json", BAD_TYPE, BAD_XSD)
    assert bad.returncode == INVALID, bad.stderr
    reports = {Path(r["path"]).name: r for r in json.loads(bad.stdout)["files"]}
    rules = {name: {f["rule"] for f in r["findings"]} for name, r in reports.items()}
    assert rules == {BAD_TYPE.name: {"BR-FR-CDV-09_MDT-77"}, BAD_XSD.name: {"XSD"}}
    warning = run("validate", "--french-rules", "warning", BAD_TYPE)
    assert warning.returncode == OK, warning.stdout
    assert "BR-FR-CDV-Schematron-CDAR_WARNING.xslt" in warning.stdout
    not_applicable = run("validate", "--rules", "pdf", VALID)
    assert not_applicable.returncode == INVALID
    assert RULES_NOT_APPLICABLE in not_applicable.stdout


# --- convert, read, send refuse it -----------------------------------------------------------


def test_read_and_convert_refuse_a_cdar_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(NotAnInvoiceError, match=NOT_AN_INVOICE):
        facturflow.read(VALID)
    with pytest.raises(NotAnInvoiceError, match=NOT_AN_INVOICE):
        facturflow.convert(VALID, "ubl")
    for args in (("read", VALID), ("convert", VALID, "--to", "ubl", "-o", tmp_path / "o.xml")):
        result = run(*args)
        assert result.returncode == USAGE, result.stdout + result.stderr
        output = (result.stdout + result.stderr).strip()
        assert NOT_AN_INVOICE in output and "Traceback" not in output
        assert len([line for line in output.splitlines() if NOT_AN_INVOICE in line]) == 1
    assert not (tmp_path / "o.xml").exists()


def test_send_rejects_a_cdar_and_sends_nothing(tmp_path: Path) -> None:
    result = run("send", "--dry-run", "--state", tmp_path / "state", VALID)
    assert result.returncode == INVALID, result.stdout + result.stderr
    assert f"{VALID}: REJECTED: unreadable: this is {NOT_AN_INVOICE}" in result.stdout
    assert "0 would be sent" in result.stdout
