"""Writers give back what was read: one tax point date in CII, Text terms kept as stated."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

import facturflow
from facturflow.cli import main
from facturflow.detection import detect_bytes
from facturflow.model import Invoice
from facturflow.model.implied import canonical
from facturflow.model.invoice import Note, PaymentInstructions, VatBreakdown
from facturflow.syntax import read_tree, to_xml
from facturflow.validation import validate

from .builders import minimal_invoice

RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
NS = {"ram": RAM}
SETTLEMENT = ".//ram:ApplicableHeaderTradeSettlement"
# Not a Factur-X profile: CII the CEN EN16931-CII stylesheet checks (CII-SR-461, CII-SR-462).
NOT_FACTURX = "urn:cen.eu:en16931:2017#compliant#urn:facturflow.test:1.0"


def _two_rates(**changes: object) -> Invoice:
    return minimal_invoice(
        specification_id=NOT_FACTURX,
        vat_breakdown=(
            VatBreakdown(category_code="S", rate=Decimal("20"), taxable_amount=Decimal("100.00"),
                         tax_amount=Decimal("20.00")),
            VatBreakdown(category_code="S", rate=Decimal("10"), taxable_amount=Decimal("50.00"),
                         tax_amount=Decimal("5.00")),
        ),
        **changes,
    )


def _reread(xml: bytes) -> Invoice:
    document = detect_bytes(xml, name="written.xml")
    return read_tree(document.tree, document.syntax)


@pytest.mark.parametrize(("term", "value", "element"), [
    ("tax_point_date", date(2026, 1, 31), "TaxPointDate"),
    ("tax_point_date_code", "432", "DueDateTypeCode"),
])
def test_cii_writes_the_tax_point_date_once_in_the_first_vat_breakdown(
    term: str, value: object, element: str
) -> None:
    # CEN's CII-SR-461 allows one ram:TaxPointDate in the document (CII-SR-462: one distinct
    # ram:DueDateTypeCode); the writer used to put BT-7/BT-8 in every VAT breakdown.
    invoice = _two_rates(**{term: value})
    root = etree.fromstring(to_xml(invoice, "cii"))
    taxes = root.xpath(f"{SETTLEMENT}/ram:ApplicableTradeTax", namespaces=NS)
    assert isinstance(taxes, list) and len(taxes) == 2
    assert [len(tax.findall(f"ram:{element}", NS)) for tax in taxes] == [1, 0]
    assert len(root.findall(f".//ram:{element}", NS)) == 1
    assert getattr(_reread(etree.tostring(root)), term) == value


def test_cii_tax_point_date_passes_cen_cii_sr_461() -> None:
    xml = to_xml(_two_rates(tax_point_date=date(2026, 1, 31)), "cii")
    # the default rules check CII that is not a Factur-X profile with CEN's CII stylesheet
    report = validate(detect_bytes(xml, name="tax-point.xml"))
    rules = {f.rule for f in report.findings}
    assert report.error is None
    ran = {a["artefact"] for s in report.applied_rule_sets() for a in s["artefacts"] if a["ran"]}
    assert "EN16931-CII-validation.xslt" in ran, ran
    assert "CII-SR-461" not in rules and "CII-SR-462" not in rules, rules


SKONTO = "#SKONTO#TAGE=10#PROZENT=3.00#\n#SKONTO#TAGE=20#PROZENT=1.50#\n"
NOTE = "Première ligne\n  deuxième ligne, indentée  \n"


def _texts() -> Invoice:
    return _two_rates(
        payment_terms=SKONTO,
        notes=(Note(text=NOTE), Note(subject_code="AAI", text=" note with spaces ")),
        payment_instructions=PaymentInstructions(
            means_code="58", means_text="Virement\nSEPA", remittance_information="REF 42\n"),
    )


@pytest.mark.parametrize("syntax", ["cii", "ubl"])
def test_text_terms_are_written_and_read_back_exactly(syntax: str) -> None:
    # BT-20 Skonto lines (XRechnung BR-DE-18) must each end with a line break: the readers
    # used to strip every value, so a round trip lost the last line's break.
    invoice = _texts()
    again = _reread(to_xml(invoice, syntax))  # type: ignore[arg-type]
    assert again.payment_terms == SKONTO
    assert [(n.subject_code, n.text) for n in again.notes] == [
        (None, NOTE), ("AAI", " note with spaces ")]
    assert again.payment_instructions is not None
    assert again.payment_instructions.means_text == "Virement\nSEPA"
    assert again.payment_instructions.remittance_information == "REF 42\n"
    assert canonical(again) == canonical(invoice)
    # and across syntaxes
    other = "ubl" if syntax == "cii" else "cii"
    assert canonical(_reread(to_xml(again, other))) == canonical(invoice)  # type: ignore[arg-type]


def test_identifiers_and_codes_are_still_read_stripped_and_blank_text_is_absent() -> None:
    xml = to_xml(_texts(), "cii").replace(b">F-1<", b">\n  F-1\n<").replace(
        SKONTO.encode(), b"\n   \n")
    again = _reread(xml)
    assert again.number == "F-1"
    assert again.payment_terms is None


def test_cli_read_keeps_payment_terms_line_breaks(tmp_path: Path) -> None:
    for syntax in ("cii", "ubl"):
        source = tmp_path / f"skonto.{syntax}.xml"
        source.write_bytes(to_xml(_texts(), syntax))  # type: ignore[arg-type]
        result = CliRunner().invoke(main, ["read", str(source), "--format", "json"])
        assert result.exit_code == 0, result.output
        assert Invoice.from_json(result.output).payment_terms == SKONTO
        assert facturflow.read(source).payment_terms == SKONTO
