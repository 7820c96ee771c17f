"""Implied terms (facturflow.model.implied) and how the writers use them."""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from facturflow.conversion import lost_terms
from facturflow.model import (
    DocumentTotals,
    Invoice,
    InvoiceLine,
    PriceDetails,
    VatBreakdown,
)
from facturflow.model.implied import (
    canonical,
    implied_gross_price,
    implied_vat_total,
    redundant_tax_currency,
)
from facturflow.syntax import read_tree, to_xml
from facturflow.syntax.cii import NS as CII_NS
from facturflow.syntax.ubl import NS as UBL_NS

from .builders import minimal_invoice as _invoice


def _discounted_line(gross: Decimal | None = None) -> InvoiceLine:
    return InvoiceLine(id="1", quantity=Decimal("2"), net_amount=Decimal("2546.00"),
                       price=PriceDetails(net_price=Decimal("1273.00"),
                                          discount=Decimal("225.00"), gross_price=gross))


def _back(xml: bytes) -> Invoice:
    root = etree.fromstring(xml)
    syntax = "cii" if "CrossIndustryInvoice" in root.tag else "ubl-invoice"
    return read_tree(etree.ElementTree(root), syntax)


def test_a_price_discount_implies_the_gross_price() -> None:
    assert implied_gross_price(_discounted_line().price) == Decimal("1498.00")  # type: ignore[arg-type]
    # Nothing to imply when the gross price is given, or when the net price is missing.
    assert implied_gross_price(_discounted_line(Decimal("1500")).price) is None  # type: ignore[arg-type]
    assert implied_gross_price(PriceDetails(discount=Decimal("1"))) is None


def test_cii_writes_the_implied_gross_price_that_its_schema_requires() -> None:
    invoice = _invoice(lines=(_discounted_line(),))
    xml = to_xml(invoice, "cii")
    gross = etree.fromstring(xml).xpath(
        "//ram:GrossPriceProductTradePrice/ram:ChargeAmount/text()", namespaces=CII_NS)
    assert gross == ["1498.00"]
    back = _back(xml)
    assert back != invoice  # BT-148 is now explicit...
    assert canonical(back) == canonical(invoice)  # ...with the value the source implied
    assert lost_terms(invoice, back) == ()
    # UBL may leave it implicit: it comes back as it was.
    assert _back(to_xml(invoice, "ubl")) == invoice


def test_a_vat_breakdown_implies_the_vat_total_that_ubl_requires() -> None:
    breakdown = (VatBreakdown(category_code="S", rate=Decimal("20"), taxable_amount=Decimal("10"),
                              tax_amount=Decimal("2.00")),
                 VatBreakdown(category_code="S", rate=Decimal("10"), taxable_amount=Decimal("10"),
                              tax_amount=Decimal("1.00")))
    invoice = _invoice(vat_breakdown=breakdown)
    assert implied_vat_total(invoice) == Decimal("3.00")
    xml = to_xml(invoice, "ubl")
    totals = etree.fromstring(xml).xpath("cac:TaxTotal/cbc:TaxAmount/text()", namespaces=UBL_NS)
    assert totals == ["3.00"]  # the sum BR-CO-14 defines, not a placeholder zero
    back = _back(xml)
    assert back.totals == DocumentTotals(vat_total=Decimal("3.00"))
    assert canonical(back) == canonical(invoice)
    assert _back(to_xml(invoice, "cii")) == invoice  # CII may leave it implicit
    # Stated, or not implied by every BT-117: nothing to imply.
    assert implied_vat_total(_invoice(vat_breakdown=breakdown,
                                      totals=DocumentTotals(vat_total=Decimal("3")))) is None
    assert implied_vat_total(_invoice(vat_breakdown=(VatBreakdown(category_code="O"),))) is None


def test_a_tax_currency_equal_to_the_invoice_currency_states_nothing() -> None:
    totals = DocumentTotals(vat_total=Decimal("3.03"), vat_total_accounting=Decimal("3.03"))
    invoice = _invoice(tax_currency_code="EUR", totals=totals)
    assert redundant_tax_currency(invoice)
    assert canonical(invoice) == _invoice(totals=DocumentTotals(vat_total=Decimal("3.03")))
    # CII leaves it out (the Factur-X CII BR-53 refuses BT-6 = BT-5) ...
    xml = to_xml(invoice, "cii")
    assert b"TaxCurrencyCode" not in xml
    back = _back(xml)
    assert back.tax_currency_code is None and lost_terms(invoice, back) == ()
    # ... UBL keeps it, with one cac:TaxTotal stating both totals.
    assert _back(to_xml(invoice, "ubl")) == invoice
    # A different BT-111, or a different currency, is information: kept everywhere.
    for other in (_invoice(tax_currency_code="EUR",
                           totals=DocumentTotals(vat_total=Decimal("3.03"),
                                                 vat_total_accounting=Decimal("3.00"))),
                  _invoice(tax_currency_code="SEK", totals=totals)):
        assert not redundant_tax_currency(other)
        assert canonical(other) == other
        assert _back(to_xml(other, "cii")) == other
        assert _back(to_xml(other, "ubl")) == other


def test_ubl_reads_bt_110_from_the_broken_down_tax_total_whatever_the_order() -> None:
    # BT-6 = BT-5 with BT-111 != BT-110: two cac:TaxTotal in the same currency, told apart by
    # the breakdown (BT-110's). A document may list the BT-111 one, without breakdown, first.
    invoice = _invoice(
        tax_currency_code="EUR",
        totals=DocumentTotals(vat_total=Decimal("3.03"), vat_total_accounting=Decimal("3.00")),
        vat_breakdown=(VatBreakdown(category_code="S", rate=Decimal("20"),
                                    taxable_amount=Decimal("15.15"),
                                    tax_amount=Decimal("3.03")),),
    )
    root = etree.fromstring(to_xml(invoice, "ubl"))
    totals = root.findall("cac:TaxTotal", UBL_NS)
    assert [t.findtext("cbc:TaxAmount", namespaces=UBL_NS) for t in totals] == ["3.03", "3.00"]
    assert _back(etree.tostring(root)) == invoice
    accounting = totals[1]
    root.remove(accounting)
    totals[0].addprevious(accounting)
    assert _back(etree.tostring(root)) == invoice
