"""The model refuses wrong types at construction (replace included), naming the business term."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal

import pytest

import facturflow
from facturflow.model import (
    AllowanceCharge,
    DocumentTotals,
    Invoice,
    InvoiceLine,
    ModelError,
    PriceDetails,
    Seller,
    VatBreakdown,
    unchecked_codes,
)
from facturflow.syntax import read_tree, to_xml

from .builders import minimal_invoice


def test_a_string_issue_date_is_refused_naming_bt2() -> None:
    with pytest.raises(ModelError) as caught:
        minimal_invoice(issue_date="2026-01-01")
    assert caught.value.business_term == "BT-2"
    assert str(caught.value).startswith(
        "BT-2 Invoice issue date: expected a datetime.date, got str '2026-01-01'"
    )


def test_a_datetime_is_not_a_date() -> None:
    with pytest.raises(ModelError, match="BT-9 Payment due date"):
        minimal_invoice(due_date=datetime(2026, 1, 1, 12, 0))


def test_a_float_quantity_is_refused_naming_bt129() -> None:
    with pytest.raises(ModelError, match=r"BT-129 Invoiced quantity: expected a Decimal, got "
                                         r"float 2\.1 \(write Decimal\('2\.1'\)"):
        InvoiceLine(id="1", quantity=2.1)  # type: ignore[arg-type]


def test_a_float_amount_is_refused_naming_bt131() -> None:
    with pytest.raises(ModelError, match="BT-131 Invoice line net amount"):
        InvoiceLine(id="1", net_amount=0.1 + 0.2)  # type: ignore[arg-type]


def test_an_amount_with_more_decimals_than_en16931_allows_is_refused() -> None:
    with pytest.raises(ModelError, match=r"BT-131 .* has 17 decimals; EN 16931 allows at most 2"):
        InvoiceLine(id="1", net_amount=Decimal("0.30000000000000004"))
    with pytest.raises(ModelError, match="BT-115 Amount due for payment"):
        DocumentTotals(amount_due=Decimal("1.001"))
    # Prices and quantities have no such limit (BR-DEC covers amounts only).
    assert PriceDetails(net_price=Decimal("0.123456")).net_price == Decimal("0.123456")
    assert InvoiceLine(id="1", quantity=Decimal("1.2345")).quantity == Decimal("1.2345")


def test_non_finite_numbers_are_refused() -> None:
    with pytest.raises(ModelError, match="BT-119"):
        VatBreakdown(category_code="S", rate=Decimal("NaN"))


def test_replace_is_checked_too() -> None:
    invoice = minimal_invoice()
    with pytest.raises(ModelError, match="BT-2 Invoice issue date"):
        dataclasses.replace(invoice, issue_date="2026-01-01")
    line = InvoiceLine(id="1", quantity=Decimal(2))
    with pytest.raises(ModelError, match="BT-129"):
        dataclasses.replace(line, quantity=2.5)


def test_an_unknown_code_is_one_clear_error_naming_the_term() -> None:
    with pytest.raises(ModelError, match="BT-5 Invoice currency code: 'EURO' is not a code"):
        minimal_invoice(currency_code="EURO")
    with pytest.raises(ModelError, match="BT-98 Document level allowance reason code"):
        minimal_invoice(allowances=[AllowanceCharge(amount=Decimal(1), reason_code="ZZZ")])


def test_groups_and_required_terms_are_checked() -> None:
    with pytest.raises(ModelError, match="BG-4 SELLER: expected a Seller, got str"):
        minimal_invoice(seller="ACME")
    with pytest.raises(ModelError, match="BT-1 Invoice number: is required"):
        minimal_invoice(number=None)
    with pytest.raises(ModelError, match="BT-27 Seller name: expected a str, got int"):
        Seller(name=42)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="BG-25 INVOICE LINE"):
        minimal_invoice(lines=[{"id": "1"}])


def test_model_error_is_a_facturflow_type_and_value_error() -> None:
    assert facturflow.ModelError is ModelError
    assert issubclass(ModelError, facturflow.FacturflowError)
    assert issubclass(ModelError, TypeError) and issubclass(ModelError, ValueError)


def test_documents_keep_their_amounts_as_written_for_validation_to_judge() -> None:
    # A document may state three decimals (BR-DEC judges it): reading keeps the value.
    with unchecked_codes():
        invoice = minimal_invoice(totals=DocumentTotals(amount_due=Decimal("1.001")))
    xml = to_xml(invoice, "cii")
    from facturflow.detection import detect_bytes

    document = detect_bytes(xml, name="x.xml")
    back = read_tree(document.tree, document.syntax)
    assert back.totals is not None and back.totals.amount_due == Decimal("1.001")


def test_decimal_amounts_are_written_as_given() -> None:
    invoice = minimal_invoice(lines=[InvoiceLine(id="1", net_amount=Decimal("0.30"))],
                              issue_date=date(2026, 1, 1))
    xml = to_xml(invoice, "cii")
    assert b"<ram:LineTotalAmount>0.30</ram:LineTotalAmount>" in xml
    assert b"20260101" in xml
    assert isinstance(Invoice.from_json(invoice.to_json()), Invoice)
