"""facturflow.model.build: the derived terms computed as EN 16931 defines them, and clear errors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

import facturflow
from facturflow.model import (
    Allowance,
    Buyer,
    Charge,
    Exemption,
    Invoice,
    Line,
    ModelError,
    Note,
    Seller,
    VatBreakdown,
    build,
)

from .build_strategies import french_company, luhn_complete
from .builders import minimal_invoice


def _lines() -> list[Line]:
    return [
        Line(item="Conseil", quantity=Decimal("2.5"), unit_price=Decimal("99.99"),
             vat_rate=Decimal("20")),
        Line(item="Livre", quantity=Decimal("3"), unit_price=Decimal("12.333"),
             vat_rate=Decimal("5.5"), allowances=[Allowance(percentage=Decimal("10"),
                                                            reason="Remise")]),
        Line(item="Formation", quantity=Decimal("1"), unit_price=Decimal("500"),
             vat_category="E"),
    ]


def _build(**changes: object) -> Invoice:
    arguments: dict[str, object] = {
        "number": "F-1",
        "issue_date": date(2026, 1, 31),
        "lines": _lines(),
        "allowances": [Allowance(amount=Decimal("5.00"), vat_rate=Decimal("20"),
                                 reason="Fidélité", reason_code="95")],
        "charges": [Charge(amount=Decimal("7.50"), vat_rate=Decimal("20"), reason="Port",
                           reason_code="FC")],
        "exemptions": {"E": Exemption(reason="Formation professionnelle",
                                      code="VATEX-EU-132-1I")},
        "prepaid_amount": Decimal("10.00"),
    }
    arguments.update(changes)
    return build(**arguments)  # type: ignore[arg-type]


def test_line_net_amounts_are_quantity_times_price_minus_allowances_plus_charges() -> None:
    invoice = _build()
    # 2.5 x 99.99 = 249.975 -> 249.98; 3 x 12.333 = 36.999 -> 37.00, minus 10 % (3.70).
    assert [line.net_amount for line in invoice.lines] == [
        Decimal("249.98"), Decimal("33.30"), Decimal("500.00")
    ]
    assert invoice.lines[1].allowances[0].amount == Decimal("3.70")
    assert invoice.lines[1].allowances[0].base_amount == Decimal("37.00")
    assert [line.id for line in invoice.lines] == ["1", "2", "3"]


def test_totals_follow_br_co_10_to_16() -> None:
    totals = _build().totals
    assert totals is not None
    assert totals.line_net_total == Decimal("783.28")          # BT-106 = sum of BT-131
    assert totals.allowance_total == Decimal("5.00")           # BT-107
    assert totals.charge_total == Decimal("7.50")              # BT-108
    assert totals.tax_exclusive_amount == Decimal("785.78")    # BT-109 = 106 - 107 + 108
    assert totals.vat_total == Decimal("52.33")                # BT-110 = sum of BT-117
    assert totals.tax_inclusive_amount == Decimal("838.11")    # BT-112 = 109 + 110
    assert totals.prepaid_amount == Decimal("10.00")           # BT-113
    assert totals.amount_due == Decimal("828.11")              # BT-115 = 112 - 113 + 114


def test_vat_breakdown_per_category_and_rate_with_exemption_reasons() -> None:
    assert _build().vat_breakdown == (
        # 249.98 - 5.00 + 7.50 = 252.48; x 20 % = 50.496 -> 50.50
        VatBreakdown(taxable_amount=Decimal("252.48"), tax_amount=Decimal("50.50"),
                     category_code="S", rate=Decimal("20")),
        # 33.30 x 5.5 % = 1.8315 -> 1.83
        VatBreakdown(taxable_amount=Decimal("33.30"), tax_amount=Decimal("1.83"),
                     category_code="S", rate=Decimal("5.5")),
        VatBreakdown(taxable_amount=Decimal("500.00"), tax_amount=Decimal("0.00"),
                     category_code="E", rate=Decimal("0"),
                     exemption_reason="Formation professionnelle",
                     exemption_reason_code="VATEX-EU-132-1I"),
    )


def test_vat_is_rounded_half_up() -> None:
    invoice = build(number="F", issue_date=date(2026, 1, 1), lines=[
        Line(item="x", quantity=Decimal("1"), unit_price=Decimal("0.25"), vat_rate=Decimal("10"))
    ])
    assert invoice.vat_breakdown[0].tax_amount == Decimal("0.03")  # 0.025 -> 0.03


def test_rounding_amount_and_base_quantity() -> None:
    invoice = build(
        number="F", issue_date=date(2026, 1, 1), rounding_amount=Decimal("0.01"),
        lines=[Line(item="vis", quantity=Decimal("250"), unit_price=Decimal("3.99"),
                    base_quantity=Decimal("100"), vat_rate=Decimal("20"))],
    )
    assert invoice.lines[0].net_amount == Decimal("9.98")  # 250 x 3.99 / 100 = 9.975
    assert invoice.totals is not None
    assert invoice.totals.amount_due == invoice.totals.tax_inclusive_amount + Decimal("0.01")


def test_gross_price_states_the_discount() -> None:
    invoice = build(number="F", issue_date=date(2026, 1, 1), lines=[
        Line(item="x", quantity=Decimal("1"), unit_price=Decimal("8"),
             gross_price=Decimal("10"), vat_rate=Decimal("20"))
    ])
    price = invoice.lines[0].price
    assert price is not None
    assert (price.net_price, price.discount, price.gross_price) == (
        Decimal("8"), Decimal("2"), Decimal("10")
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lines": [Line(item="x", quantity=2.1, unit_price=Decimal(1),  # type: ignore[arg-type]
                         vat_rate=Decimal(20))]},
         r"BT-129 Invoiced quantity: expected a Decimal, got float 2\.1"),
        ({"lines": [Line(item="x", quantity=Decimal(1), unit_price=Decimal(1),
                         vat_category="E")], "exemptions": None},
         r"BT-120 VAT exemption reason text: VAT category E needs an exemption reason"),
        ({"lines": [Line(item="x", quantity=Decimal(1), unit_price=Decimal(1))]},
         r"BT-152 Invoiced item VAT rate: category S needs a VAT rate"),
        ({"lines": [Line(item="x", quantity=Decimal(1), unit_price=Decimal(1),
                         vat_category="O", vat_rate=Decimal(0))]},
         r"BT-152 .*category O \(not subject to VAT\) takes no VAT rate"),
        ({"lines": [Line(item="x", quantity=Decimal(1), unit_price=Decimal(1),
                         vat_category="XX", vat_rate=Decimal(0))]},
         r"BT-151 Invoiced item VAT category code: 'XX' is not a code"),
        ({"issue_date": "2026-01-01"}, r"BT-2 Invoice issue date: expected a datetime.date"),
        ({"lines": []}, r"BG-25 INVOICE LINE: an invoice needs at least one line"),
        ({"totals": None}, r"build\(\) computes totals"),
        ({"allowances": [Allowance(percentage=Decimal(5), vat_rate=Decimal(20), reason="r")]},
         r"BT-92 Document level allowance amount: an allowance given as a percentage needs "
         r"a base_amount"),
        ({"charges": [Charge(amount=Decimal(5), vat_rate=Decimal(20))]},
         r"BT-104 Document level charge reason: a charge needs a reason"),
        ({"exemptions": {"E": Exemption(code="VATEX-EU-132"),
                         "AE": Exemption(code="VATEX-EU-AE")}},
         r"exemptions given for VAT categories no line .* uses: AE"),
    ],
)
def test_wrong_inputs_raise_one_model_error_naming_the_term(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        _build(**change)


def test_a_built_invoice_converts_to_factur_x_ubl_and_cii_and_reads_back_equal() -> None:
    seller = french_company(Seller, luhn_complete("73204815"), "Atelier Lumen SAS")
    buyer = french_company(Buyer, luhn_complete("98765432"), "Client SA", city="Lyon",
                           post_code="69002")
    invoice = _build(
        seller=seller, buyer=buyer, business_process="S1",
        notes=[Note(subject_code="PMT", text="Indemnité forfaitaire : 40 €"),
               Note(subject_code="PMD", text="Pénalités : 3 fois le taux légal"),
               Note(subject_code="AAB", text="Pas d'escompte")],
    )
    for to in ("facturx", "ubl", "cii"):
        result = facturflow.convert(invoice, to=to)  # type: ignore[arg-type]
        assert result.report.ok
        assert facturflow.read(result.data) == invoice


def test_convert_of_an_invoice_refuses_an_invalid_one_naming_the_rules() -> None:
    invoice = minimal_invoice()  # no seller, no lines: far from valid
    with pytest.raises(facturflow.ConversionError, match="would be invalid"):
        facturflow.convert(invoice, to="cii")
