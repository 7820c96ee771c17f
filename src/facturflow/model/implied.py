"""Terms an invoice states implicitly, and the one form in which two invoices compare.

EN 16931-1 fixes a few business terms by others, and the syntaxes disagree on whether such a
term must be explicit, may be omitted, or must be left out:

- BT-148 Item gross price beside an Item price discount (BT-147). EN 16931-1 defines BT-147 as
  "the total discount subtracted from the Item gross price to calculate the Item net price", so
  a line with BT-146 and BT-147 states its gross price: BT-148 = BT-146 + BT-147. UBL may omit
  it (cac:AllowanceCharge/cbc:BaseAmount is optional); CII cannot, since the discount lives in
  ram:GrossPriceProductTradePrice, whose ram:ChargeAmount (BT-148) the schema requires.
- BT-110 Invoice total VAT amount beside a VAT breakdown. BR-CO-14 defines it as the sum of the
  VAT category tax amounts (BT-117). CII may omit it; UBL cannot, since the breakdown lives in a
  cac:TaxTotal, whose cbc:TaxAmount (BT-110) the schema requires.
- BT-6 VAT accounting currency equal to BT-5. EN 16931-1 asks for BT-6 "when the VAT accounting
  currency code differs from the Invoice currency code"; equal to BT-5 it states nothing, and
  neither does a BT-111 equal to BT-110. UBL carries it; the Factur-X CII rules refuse it
  (BR-53 there requires BT-6 to differ from BT-5).

`canonical()` puts an invoice in one form for all three: BT-148 and BT-110 made explicit, a
redundant BT-6 (and its BT-111) left out. Two invoices with equal canonical forms state the same
business terms; the corpus fidelity reports count these differences apart ("implied"), and
conversion does not count them as dropped terms. The writers use the same functions: CII writes
the implied gross price and leaves out a redundant BT-6, UBL writes the implied BT-110.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

from .codelists import as_read
from .invoice import DocumentTotals, Invoice, InvoiceLine, PriceDetails

__all__ = [
    "canonical",
    "implied_gross_price",
    "implied_vat_total",
    "redundant_tax_currency",
    "with_implied_gross_prices",
    "with_implied_vat_total",
    "without_redundant_tax_currency",
]


def _copies(function: Callable[[Invoice], Invoice]) -> Callable[[Invoice], Invoice]:
    """Copies of an invoice keep its amounts as they are: an invoice read from a document may
    hold amounts with more decimals than EN 16931 allows, which validation (not a copy) judges."""

    def wrapper(invoice: Invoice) -> Invoice:
        with as_read():
            return function(invoice)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def implied_gross_price(price: PriceDetails) -> Decimal | None:
    """BT-148 = BT-146 + BT-147 when a price states a discount but no gross price, else None."""
    if price.gross_price is not None or price.discount is None or price.net_price is None:
        return None
    return price.net_price + price.discount


@_copies
def with_implied_gross_prices(invoice: Invoice) -> Invoice:
    """The invoice with every implied item gross price (BT-148) explicit."""
    lines: list[InvoiceLine] = []
    changed = False
    for line in invoice.lines:
        gross = implied_gross_price(line.price) if line.price is not None else None
        if gross is not None and line.price is not None:
            line = dataclasses.replace(line, price=dataclasses.replace(line.price,
                                                                       gross_price=gross))
            changed = True
        lines.append(line)
    return dataclasses.replace(invoice, lines=tuple(lines)) if changed else invoice


def implied_vat_total(invoice: Invoice) -> Decimal | None:
    """BT-110 = sum of BT-117 (BR-CO-14) when a VAT breakdown is given without BT-110 and every
    breakdown states its BT-117; else None."""
    if not invoice.vat_breakdown or (invoice.totals and invoice.totals.vat_total is not None):
        return None
    amounts = [b.tax_amount for b in invoice.vat_breakdown]
    if any(a is None for a in amounts):
        return None
    return sum((a for a in amounts if a is not None), Decimal(0))


@_copies
def with_implied_vat_total(invoice: Invoice) -> Invoice:
    """The invoice with its implied total VAT amount (BT-110) explicit."""
    total = implied_vat_total(invoice)
    if total is None:
        return invoice
    totals = invoice.totals or DocumentTotals()
    return dataclasses.replace(invoice, totals=dataclasses.replace(totals, vat_total=total))


def redundant_tax_currency(invoice: Invoice) -> bool:
    """True when BT-6 equals BT-5 and BT-111, if any, equals BT-110: BT-6 states nothing."""
    if invoice.tax_currency_code is None or invoice.tax_currency_code != invoice.currency_code:
        return False
    totals = invoice.totals
    accounting = totals.vat_total_accounting if totals else None
    return accounting is None or (totals is not None and accounting == totals.vat_total)


@_copies
def without_redundant_tax_currency(invoice: Invoice) -> Invoice:
    """The invoice without a BT-6 equal to BT-5 (and without its BT-111, equal to BT-110)."""
    if not redundant_tax_currency(invoice):
        return invoice
    totals = invoice.totals
    if totals is not None and totals.vat_total_accounting is not None:
        totals = dataclasses.replace(totals, vat_total_accounting=None)
        if totals == DocumentTotals():
            totals = None
    return dataclasses.replace(invoice, tax_currency_code=None, totals=totals)


def canonical(invoice: Invoice) -> Invoice:
    """The invoice with its implied terms explicit and its redundant ones left out."""
    return without_redundant_tax_currency(
        with_implied_vat_total(with_implied_gross_prices(invoice))
    )
