"""Build an invoice in code: give lines, allowances, charges and parties; get every derived term.

    invoice = build(number="F-1", issue_date=date(2026, 1, 31), seller=..., buyer=...,
                    lines=[Line(item="Conseil", quantity=Decimal("2"),
                                unit_price=Decimal("100.00"), vat_rate=Decimal("20"))])

`build` computes, as EN 16931-1 defines them and its rules check them:

- each line's net amount BT-131 = quantity × (net price BT-146 / base quantity BT-149)
  + line charges (BT-141) − line allowances (BT-136), rounded to 2 decimals; a line allowance or
  charge given as a percentage gets its amount from the line's price × quantity;
- the document totals BG-22: BT-106 = Σ BT-131 (BR-CO-10), BT-107 = Σ BT-92 (BR-CO-11),
  BT-108 = Σ BT-99 (BR-CO-12), BT-109 = BT-106 − BT-107 + BT-108 (BR-CO-13), BT-110 = Σ BT-117
  (BR-CO-14), BT-112 = BT-109 + BT-110 (BR-CO-15), BT-115 = BT-112 − BT-113 + BT-114 (BR-CO-16);
- the VAT breakdown BG-23, one per VAT category and rate in order of first use: BT-116 = Σ
  BT-131 + Σ BT-99 − Σ BT-92 of that category and rate (BR-S-08, BR-Z-08, BR-E-08, BR-AE-08,
  BR-IC-08, BR-G-08, BR-O-08, ...), BT-117 = BT-116 × BT-119 / 100 rounded half up to 2 decimals
  (BR-CO-17), 0 for the categories without VAT (E, AE, K, G, O), with the exemption reason
  (BT-120/BT-121) these need, given once per category in `exemptions`.

Inputs are checked as they arrive: wrong types, rates that do not fit their category, a category
without its exemption reason raise ModelError naming the business term.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .codelists import check
from .errors import ModelError
from .invoice import (
    AllowanceCharge,
    Buyer,
    DocumentTotals,
    Identifier,
    Invoice,
    InvoiceLine,
    Item,
    LineVat,
    Period,
    PriceDetails,
    Seller,
    VatBreakdown,
)

__all__ = ["Allowance", "Charge", "Exemption", "Line", "build"]

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
# Categories whose VAT amount is 0 and whose breakdown needs an exemption reason (BT-120/121):
# exempt (E), reverse charge (AE), intra-community supply (K), export (G), not subject (O).
EXEMPT_CATEGORIES = frozenset({"E", "AE", "K", "G", "O"})
# Categories whose rate is 0: the exempt ones (O states no rate at all) and zero rated (Z).
ZERO_RATE_CATEGORIES = frozenset({"E", "AE", "K", "G", "Z"})


def money(value: Decimal | int) -> Decimal:
    """An amount rounded half up to the 2 decimals EN 16931 allows (never -0.00)."""
    rounded = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded else CENT * 0  # -0.00 and 0.00 are one amount: write 0.00


@dataclass(frozen=True, kw_only=True)
class Exemption:
    """Why a VAT category bears no VAT: a text (BT-120), a VATEX code (BT-121), or both."""

    reason: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if self.reason is None and self.code is None:
            raise ModelError("BT-120", "an exemption needs a reason text or a VATEX code (BT-121)")
        if self.reason is not None and not isinstance(self.reason, str):
            raise ModelError("BT-120", f"expected a str, got {type(self.reason).__name__}")
        if self.code is not None:
            if not isinstance(self.code, str):
                raise ModelError("BT-121", f"expected a str, got {type(self.code).__name__}")
            check("vatex", self.code, "BT-121")


@dataclass(frozen=True, kw_only=True)
class _Adjustment:
    amount: Decimal | None = None
    percentage: Decimal | None = None
    base_amount: Decimal | None = None
    reason: str | None = None
    reason_code: str | None = None
    # Document level only: the VAT category and rate the amount falls under.
    vat_category: str = "S"
    vat_rate: Decimal | None = None

    KIND = "allowance"

    @property
    def what(self) -> str:
        return "an allowance" if self.KIND == "allowance" else "a charge"

    def resolve(self, default_base: Decimal | None, where: str) -> tuple[Decimal, Decimal | None]:
        """(amount, base amount) of this allowance or charge."""
        if self.amount is None and self.percentage is None:
            raise ModelError(where, f"{self.what} needs an amount or a percentage")
        base = self.base_amount
        if self.percentage is not None and base is None:
            base = default_base
        if self.amount is not None:
            return self.amount, base
        if base is None:
            raise ModelError(where, f"{self.what} given as a percentage needs a base_amount")
        assert self.percentage is not None
        return money(base * self.percentage / HUNDRED), base


@dataclass(frozen=True, kw_only=True)
class Allowance(_Adjustment):
    """An allowance: on a line (BG-27) or on the document (BG-20, with its VAT category and
    rate). Give `amount`, or `percentage` of `base_amount` (on a line, the base defaults to
    price × quantity)."""

    KIND = "allowance"


@dataclass(frozen=True, kw_only=True)
class Charge(_Adjustment):
    """A charge: on a line (BG-28) or on the document (BG-21, with its VAT category and rate).
    Give `amount`, or `percentage` of `base_amount` (on a line, the base defaults to price ×
    quantity)."""

    KIND = "charge"


@dataclass(frozen=True, kw_only=True)
class Line:
    """One invoice line to build: what is sold, how many, at what price, under which VAT.

    `unit_price` is the item net price BT-146 (per `base_quantity` units, default 1);
    `gross_price` (BT-148), when given, states the discount BT-147 = gross − net.
    """

    item: str | Item
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal | None = None
    vat_category: str = "S"
    unit_code: str = "C62"
    base_quantity: Decimal | None = None
    gross_price: Decimal | None = None
    allowances: Sequence[Allowance] = ()
    charges: Sequence[Charge] = ()
    id: str | None = None
    note: str | None = None
    period: Period | None = None
    order_line_reference: str | None = None
    accounting_reference: str | None = None
    object_ids: Sequence[Identifier] = field(default=())


def _vat(category: str, rate: Decimal | None, where: tuple[str, str]) -> Decimal | None:
    """The rate to write for a category, checked (BR-S-05, BR-Z-05, BR-E-05, BR-O-05...)."""
    category_term, rate_term = where
    if not isinstance(category, str):
        raise ModelError(category_term, f"expected a str, got {type(category).__name__}")
    check("vat_category", category, category_term)
    if rate is not None and not isinstance(rate, Decimal):
        raise ModelError(rate_term, f"expected a Decimal, got {type(rate).__name__} {rate!r}")
    if category == "O":
        if rate is not None:
            raise ModelError(rate_term, "category O (not subject to VAT) takes no VAT rate")
        return None
    if category in ZERO_RATE_CATEGORIES:
        if rate is not None and rate != 0:
            raise ModelError(rate_term, f"category {category} takes a VAT rate of 0, got {rate}")
        return Decimal(0)
    if rate is None:
        raise ModelError(rate_term, f"category {category} needs a VAT rate")
    if category == "S" and rate <= 0:
        raise ModelError(rate_term, f"category S (standard rate) needs a rate above 0, got {rate}")
    if rate < 0:
        raise ModelError(rate_term, f"a VAT rate cannot be negative, got {rate}")
    return rate


def _line(index: int, line: Line) -> InvoiceLine:
    if not isinstance(line, Line):
        raise ModelError("BG-25", f"expected a facturflow.model.Line, got {type(line).__name__}")
    for name, term in (("quantity", "BT-129"), ("unit_price", "BT-146")):
        value = getattr(line, name)
        if not isinstance(value, Decimal):
            hint = f" (write Decimal({str(value)!r}))" if isinstance(value, float | int) else ""
            raise ModelError(term, f"expected a Decimal, got {type(value).__name__} "
                                   f"{value!r}{hint}")
    rate = _vat(line.vat_category, line.vat_rate, ("BT-151", "BT-152"))
    base_quantity = line.base_quantity or Decimal(1)
    gross_line = line.quantity * line.unit_price / base_quantity
    allowances = [
        AllowanceCharge(**_adjustment_fields(a, gross_line, "BG-27")) for a in line.allowances
    ]
    charges = [AllowanceCharge(**_adjustment_fields(c, gross_line, "BG-28")) for c in line.charges]
    net = money(gross_line) + sum((c.amount for c in charges), Decimal(0)) - sum(
        (a.amount for a in allowances), Decimal(0)
    )
    discount = None
    if line.gross_price is not None:
        discount = line.gross_price - line.unit_price
    item = line.item if isinstance(line.item, Item) else Item(name=line.item)
    return InvoiceLine(
        id=line.id if line.id is not None else str(index),
        note=line.note,
        object_ids=tuple(line.object_ids),
        quantity=line.quantity,
        unit_code=line.unit_code,
        net_amount=money(net),
        order_line_reference=line.order_line_reference,
        accounting_reference=line.accounting_reference,
        period=line.period,
        allowances=tuple(allowances),
        charges=tuple(charges),
        price=PriceDetails(
            net_price=line.unit_price,
            discount=discount,
            gross_price=line.gross_price,
            base_quantity=line.base_quantity,
            base_quantity_unit=line.unit_code if line.base_quantity is not None else None,
        ),
        vat=LineVat(category_code=line.vat_category, rate=rate),
        item=item,
    )


def _adjustment_fields(
    adjustment: _Adjustment, default_base: Decimal | None, group: str
) -> dict[str, Any]:
    expected = Allowance if group in ("BG-20", "BG-27") else Charge
    if not isinstance(adjustment, expected):
        raise ModelError(group, f"expected a facturflow.model.{expected.__name__}, got "
                                f"{type(adjustment).__name__}")
    amount_term = {"BG-20": "BT-92", "BG-21": "BT-99", "BG-27": "BT-136", "BG-28": "BT-141"}
    amount, base = adjustment.resolve(
        money(default_base) if default_base is not None else None, amount_term[group]
    )
    fields: dict[str, Any] = {
        "amount": amount,
        "base_amount": base if adjustment.percentage is not None else adjustment.base_amount,
        "percentage": adjustment.percentage,
        "reason": adjustment.reason,
        "reason_code": adjustment.reason_code,
    }
    if group in ("BG-20", "BG-21"):
        terms = ("BT-95", "BT-96") if group == "BG-20" else ("BT-102", "BT-103")
        fields["vat_category_code"] = adjustment.vat_category
        fields["vat_rate"] = _vat(adjustment.vat_category, adjustment.vat_rate, terms)
    if adjustment.reason is None and adjustment.reason_code is None:
        reason_term = {"BG-20": "BT-97", "BG-21": "BT-104", "BG-27": "BT-139",
                       "BG-28": "BT-144"}[group]
        # BR-33, BR-38, BR-42, BR-44: every allowance and charge states why.
        raise ModelError(reason_term, f"{adjustment.what} needs a reason or a reason_code")
    return fields


# Terms build() computes: passing them would contradict the computation.
_COMPUTED = frozenset({"lines", "allowances", "charges", "totals", "vat_breakdown"})


def build(
    *,
    number: str,
    issue_date: date,
    lines: Sequence[Line],
    seller: Seller | None = None,
    buyer: Buyer | None = None,
    allowances: Sequence[Allowance] = (),
    charges: Sequence[Charge] = (),
    currency_code: str = "EUR",
    type_code: str = "380",
    exemptions: Mapping[str, Exemption] | None = None,
    prepaid_amount: Decimal | None = None,
    rounding_amount: Decimal | None = None,
    vat_total_accounting: Decimal | None = None,
    specification_id: str = "urn:cen.eu:en16931:2017",
    **terms: Any,
) -> Invoice:
    """An Invoice with its line net amounts, totals (BG-22) and VAT breakdown (BG-23) computed.

    `seller` and `buyer` are model `Seller` / `Buyer`; `terms` are any other Invoice fields
    (due_date, buyer_reference, payment_instructions, notes, business_process, delivery, ...).
    `exemptions` gives, per VAT category without VAT (E, AE, K, G, O), its reason.
    `vat_total_accounting` is BT-111, with `tax_currency_code` (BT-6) in `terms`.
    Raises ModelError naming the business term of a wrong input.
    """
    clash = _COMPUTED & set(terms)
    if clash:
        raise ModelError("BG-22", f"build() computes {', '.join(sorted(clash))}: pass Line, "
                                  "Allowance and Charge inputs instead")
    if not lines:
        raise ModelError("BG-25", "an invoice needs at least one line (BR-16)")
    built_lines = tuple(_line(n, line) for n, line in enumerate(lines, start=1))
    doc_allowances = tuple(AllowanceCharge(**_adjustment_fields(a, None, "BG-20"))
                           for a in allowances)
    doc_charges = tuple(AllowanceCharge(**_adjustment_fields(c, None, "BG-21")) for c in charges)

    # BG-23: one breakdown per (category, rate), in order of first use.
    bases: dict[tuple[str, Decimal | None], Decimal] = {}
    for invoice_line in built_lines:
        assert invoice_line.vat is not None and invoice_line.vat.category_code is not None
        assert invoice_line.net_amount is not None
        key = (invoice_line.vat.category_code, invoice_line.vat.rate)
        bases[key] = bases.get(key, Decimal(0)) + invoice_line.net_amount
    for adjustment, sign in [(a, -1) for a in doc_allowances] + [(c, 1) for c in doc_charges]:
        assert adjustment.vat_category_code is not None
        key = (adjustment.vat_category_code, adjustment.vat_rate)
        bases[key] = bases.get(key, Decimal(0)) + sign * adjustment.amount
    exemptions = dict(exemptions or {})
    breakdown = []
    for (category, rate), basis in bases.items():
        reason = exemptions.get(category)
        if category in EXEMPT_CATEGORIES and reason is None:
            raise ModelError(
                "BT-120", f"VAT category {category} needs an exemption reason (BR-{category}-10):"
                f" pass exemptions={{{category!r}: Exemption(code=..., reason=...)}}"
            )
        if reason is not None and not isinstance(reason, Exemption):
            raise ModelError("BT-120", f"expected a facturflow.model.Exemption for category "
                                       f"{category}, got {type(reason).__name__}")
        tax = money(0) if category in EXEMPT_CATEGORIES or rate is None else money(
            basis * rate / HUNDRED
        )
        breakdown.append(VatBreakdown(
            taxable_amount=money(basis),
            tax_amount=tax,
            category_code=category,
            rate=rate,
            exemption_reason=reason.reason if reason else None,
            exemption_reason_code=reason.code if reason else None,
        ))
    unused = set(exemptions) - {category for category, _ in bases}
    if unused:
        raise ModelError("BT-121", f"exemptions given for VAT categories no line or document "
                                   f"allowance or charge uses: {', '.join(sorted(unused))}")

    line_total = money(sum((line.net_amount or 0 for line in built_lines), Decimal(0)))
    allowance_total = money(sum((a.amount for a in doc_allowances), Decimal(0)))
    charge_total = money(sum((c.amount for c in doc_charges), Decimal(0)))
    tax_exclusive = money(line_total - allowance_total + charge_total)
    vat_total = money(sum((b.tax_amount or 0 for b in breakdown), Decimal(0)))
    tax_inclusive = money(tax_exclusive + vat_total)
    due = money(tax_inclusive - (prepaid_amount or 0) + (rounding_amount or 0))
    totals = DocumentTotals(
        line_net_total=line_total,
        allowance_total=allowance_total if doc_allowances else None,
        charge_total=charge_total if doc_charges else None,
        tax_exclusive_amount=tax_exclusive,
        vat_total=vat_total,
        vat_total_accounting=vat_total_accounting,
        tax_inclusive_amount=tax_inclusive,
        prepaid_amount=prepaid_amount,
        rounding_amount=rounding_amount,
        amount_due=due,
    )
    return Invoice(
        number=number,
        issue_date=issue_date,
        type_code=type_code,
        currency_code=currency_code,
        specification_id=specification_id,
        seller=seller,
        buyer=buyer,
        allowances=doc_allowances,
        charges=doc_charges,
        totals=totals,
        vat_breakdown=tuple(breakdown),
        lines=built_lines,
        **terms,
    )

