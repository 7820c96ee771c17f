"""Hypothesis strategies that build invoices through facturflow.model.build, as a backend would.

Parties are French companies (SIREN with a valid check digit, scheme 0002; VAT id with its key;
electronic address scheme 0225) or, with `french=False`, German ones; lines mix VAT categories
and rates, with line and document allowances and charges given as amounts or percentages.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from facturflow.model import (
    Allowance,
    Buyer,
    Charge,
    CreditTransfer,
    ElectronicAddress,
    Exemption,
    Identifier,
    Invoice,
    Line,
    Note,
    PaymentInstructions,
    PostalAddress,
    Seller,
    build,
)

words = st.text(st.characters(codec="utf-8", categories=("L", "N"), exclude_characters="\x85"),
                min_size=1, max_size=20)


def luhn_complete(digits: str) -> str:
    """`digits` with the Luhn check digit appended (SIREN, SIRET)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (1 if i % 2 else 2)
        total += n - 9 if n > 9 else n
    return digits + str((10 - total % 10) % 10)


sirens = st.integers(min_value=10_000_000, max_value=99_999_999).map(
    lambda n: luhn_complete(str(n))
)


def french_vat_id(siren: str) -> str:
    return f"FR{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"


def french_company(cls: type[Seller] | type[Buyer], siren: str, name: str, line1: str = "1 rue A",
                   city: str = "Paris", post_code: str = "75001") -> Seller | Buyer:
    """A French company as BR-FR wants it: SIREN (scheme 0002), VAT id, address 0225."""
    return cls(
        name=name,
        legal_registration_id=Identifier(value=siren, scheme="0002"),
        vat_id=french_vat_id(siren),
        electronic_address=ElectronicAddress(value=siren, scheme="0225"),
        postal_address=PostalAddress(line1=line1, city=city, post_code=post_code,
                                     country_code="FR"),
    )


@st.composite
def french_party(draw: st.DrawFn, cls: type[Seller] | type[Buyer]) -> Seller | Buyer:
    return french_company(cls, draw(sirens), draw(words), draw(words), draw(words),
                          f"{draw(st.integers(1000, 95999)):05d}")


@st.composite
def german_party(draw: st.DrawFn, cls: type[Seller] | type[Buyer]) -> Seller | Buyer:
    number = draw(st.integers(100_000_000, 999_999_999))
    return cls(
        name=draw(words),
        vat_id=f"DE{number}",
        electronic_address=ElectronicAddress(value=f"{draw(words)}@example.com", scheme="EM"),
        postal_address=PostalAddress(line1=draw(words), city=draw(words),
                                     post_code=f"{draw(st.integers(10000, 99999))}",
                                     country_code="DE"),
    )


def decimals(low: str, high: str, places: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=places,
                       allow_nan=False, allow_infinity=False)


# (category, rate): standard rates (French ones only for French parties: BR-FR-16), zero rated,
# exempt, reverse charge.
FRENCH_VAT = [
    ("S", Decimal("20")), ("S", Decimal("10")), ("S", Decimal("5.5")), ("S", Decimal("2.1")),
    ("Z", None), ("E", None), ("AE", None),
]
OTHER_VAT = [("S", Decimal("19")), ("S", Decimal("7")), ("S", Decimal("21")), ("Z", None),
             ("E", None), ("AE", None)]
EXEMPTIONS = {
    "E": Exemption(reason="Exonération de TVA, article 261 du CGI", code="VATEX-EU-132"),
    "AE": Exemption(reason="Autoliquidation", code="VATEX-EU-AE"),
}
REASONS = st.sampled_from([("Remise", "95"), ("Remise commerciale", "100"), ("Escompte", None)])
CHARGE_REASONS = st.sampled_from([("Transport", "FC"), ("Emballage", "ABL"), ("Frais", None)])


@st.composite
def adjustment(draw: st.DrawFn, kind: type[Allowance] | type[Charge],
               vat: tuple[str, Decimal | None] | None = None) -> Allowance | Charge:
    reason, code = draw(REASONS if kind is Allowance else CHARGE_REASONS)
    extra: dict[str, object] = {}
    if vat is not None:
        extra = {"vat_category": vat[0], "vat_rate": vat[1]}
    if draw(st.booleans()):
        return kind(amount=draw(decimals("0.01", "50", 2)), reason=reason, reason_code=code,
                    **extra)  # type: ignore[arg-type]
    base = None if vat is None else draw(decimals("1", "500", 2))
    return kind(percentage=draw(decimals("0.5", "15", 2)), base_amount=base, reason=reason,
                reason_code=code, **extra)  # type: ignore[arg-type]


@st.composite
def line(draw: st.DrawFn, french: bool = True) -> Line:
    category, rate = draw(st.sampled_from(FRENCH_VAT if french else OTHER_VAT))
    price = draw(decimals("0.01", "5000", draw(st.integers(0, 4))))
    gross = None
    if draw(st.integers(0, 4)) == 0:
        gross = price + draw(decimals("0.01", "10", 2))
    return Line(
        item=draw(words),
        quantity=draw(decimals("0.001", "500", draw(st.integers(0, 3)))),
        unit_price=price,
        gross_price=gross,
        vat_category=category,
        vat_rate=rate,
        unit_code=draw(st.sampled_from(["C62", "H87", "HUR", "KGM", "DAY"])),
        allowances=draw(st.lists(adjustment(Allowance), max_size=1)),
        charges=draw(st.lists(adjustment(Charge), max_size=1)),
    )


@st.composite
def built_invoices(draw: st.DrawFn, *, french: bool = True) -> Invoice:
    """An invoice made by build(); every one must pass XSD, EN 16931 and Factur-X rules (and
    BR-FR when `french`)."""
    lines = draw(st.lists(line(french), min_size=1, max_size=4))
    used = list(dict.fromkeys((ln.vat_category, ln.vat_rate) for ln in lines))
    allowances = draw(st.lists(st.sampled_from(used).flatmap(
        lambda vat: adjustment(Allowance, vat)), max_size=2))
    charges = draw(st.lists(st.sampled_from(used).flatmap(
        lambda vat: adjustment(Charge, vat)), max_size=1))
    party = french_party if french else german_party
    issue = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)))
    categories = {c for c, _ in used}
    number = f"F-{draw(st.integers(1, 999999))}"
    return build(
        number=number,
        issue_date=issue,
        seller=draw(party(Seller)),
        buyer=draw(party(Buyer)),
        lines=lines,
        allowances=allowances,
        charges=charges,
        exemptions={c: e for c, e in EXEMPTIONS.items() if c in categories},
        due_date=issue + timedelta(days=draw(st.integers(0, 60))),
        buyer_reference=draw(words),
        business_process="S1" if french else None,
        notes=[
            Note(subject_code="PMT", text="Indemnité forfaitaire de recouvrement : 40 €"),
            Note(subject_code="PMD", text="Pénalités de retard : trois fois le taux légal"),
            Note(subject_code="AAB", text="Pas d'escompte pour paiement anticipé"),
        ],
        payment_instructions=PaymentInstructions(
            means_code="58", remittance_information=number,
            credit_transfers=(CreditTransfer(account_id="FR7630006000011234567890189"),),
        ),
        prepaid_amount=draw(st.none() | decimals("0", "10", 2)),
    )
