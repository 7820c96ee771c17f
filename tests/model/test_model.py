"""The model: typed immutable values, BT/BG metadata, code lists, dict/JSON shape."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from facturflow.model import (
    AllowanceCharge,
    CodeListError,
    ElectronicAddress,
    Identifier,
    Invoice,
    InvoiceLine,
    PostalAddress,
    Seller,
    VatBreakdown,
    business_term,
    unchecked_codes,
)

from .builders import minimal_invoice as _invoice


def test_every_field_of_every_group_carries_a_business_term_id() -> None:
    import typing

    seen: set[str] = set()
    visited: set[type] = set()
    stack: list[type] = [Invoice]
    while stack:
        cls = stack.pop()
        if cls in visited:
            continue
        visited.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            ident = f.metadata.get("bt") or f.metadata.get("bg")
            assert ident, f"{cls.__name__}.{f.name} has no BT/BG id"
            seen.update(ident.values() if isinstance(ident, dict) else [ident])
            for arg in (hints[f.name], *typing.get_args(hints[f.name])):
                for inner in (arg, *typing.get_args(arg)):
                    if dataclasses.is_dataclass(inner) and "bg" in f.metadata:
                        stack.append(inner)  # type: ignore[arg-type]
    assert len(visited) > 20  # every group class was walked
    # The core groups and a sample of terms from each part of EN 16931-1.
    for ident in ("BT-1", "BT-24", "BG-4", "BT-34", "BT-49", "BG-16", "BG-22", "BT-115",
                  "BG-23", "BG-25", "BT-131", "BG-31", "BT-153", "BT-161", "EXT-FR-FE-162"):
        assert ident in seen


def test_field_metadata_names_the_business_term() -> None:
    fields = {f.name: f for f in dataclasses.fields(Invoice)}
    assert fields["number"].metadata["bt"] == "BT-1"
    assert fields["seller"].metadata["bg"] == "BG-4"
    assert fields["lines"].metadata["bg"] == "BG-25"


def test_shared_classes_resolve_their_term_per_group() -> None:
    assert business_term(PostalAddress, "city", "BG-5") == "BT-37"
    assert business_term(PostalAddress, "city", "BG-8") == "BT-52"
    assert business_term(AllowanceCharge, "amount", "BG-21") == "BT-99"
    with pytest.raises(KeyError):
        business_term(PostalAddress, "city")


def test_invoices_are_immutable_and_sequences_become_tuples() -> None:
    invoice = _invoice(lines=[InvoiceLine(id="1")])
    assert invoice.lines == (InvoiceLine(id="1"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        invoice.number = "F-2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "term"),
    [
        (lambda: _invoice(type_code="999"), "BT-3"),
        (lambda: _invoice(currency_code="EURO"), "BT-5"),
        (lambda: VatBreakdown(category_code="X"), "BT-118"),
        (lambda: PostalAddress(country_code="XX"), "PostalAddress.country_code"),
        (lambda: ElectronicAddress(value="a", scheme="9999"), "BT-34-1/BT-49-1"),
        (lambda: _invoice(allowances=[AllowanceCharge(amount=Decimal(1), reason_code="ZZZ")]),
         "BT-98"),
        (lambda: InvoiceLine(id="1", unit_code="BOX"), "BT-130"),
    ],
)
def test_codes_outside_their_code_list_are_refused(build: object, term: str) -> None:
    with pytest.raises(CodeListError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.business_term == term


def test_charge_reasons_are_checked_against_the_charge_list() -> None:
    # 'FC' (freight) is a UNTDID 7161 charge reason but not a 5189 allowance reason.
    _invoice(charges=[AllowanceCharge(amount=Decimal(5), reason_code="FC")])
    with pytest.raises(CodeListError):
        _invoice(allowances=[AllowanceCharge(amount=Decimal(5), reason_code="FC")])


def test_code_checks_can_be_suspended_for_lenient_reading() -> None:
    with unchecked_codes():
        assert VatBreakdown(category_code="X").category_code == "X"
    with pytest.raises(CodeListError):
        VatBreakdown(category_code="X")


def test_to_dict_is_keyed_by_business_term_ids() -> None:
    invoice = _invoice(
        seller=Seller(name="ACME", postal_address=PostalAddress(city="Paris", country_code="FR"),
                      legal_registration_id=Identifier(value="123456782", scheme="0002")),
        lines=[InvoiceLine(id="1", quantity=Decimal("2.50"), unit_code="C62")],
    )
    data = invoice.to_dict()
    assert data["BT-1"] == "F-1"
    assert data["BT-2"] == "2026-01-05"
    assert data["BG-4"]["BG-5"] == {"BT-37": "Paris", "BT-40": "FR"}
    assert data["BG-4"]["BT-30"] == {"value": "123456782", "scheme": "0002"}
    assert data["BG-25"] == [{"BT-126": "1", "BT-129": "2.50", "BT-130": "C62"}]
    assert Invoice.from_dict(data) == invoice
    assert Invoice.from_json(invoice.to_json()) == invoice


def test_from_dict_refuses_unknown_terms_and_bad_values() -> None:
    data = _invoice().to_dict()
    with pytest.raises(ValueError, match="unknown keys"):
        Invoice.from_dict({**data, "BT-999": "x"})
    with pytest.raises(ValueError, match="ISO date"):
        Invoice.from_dict({**data, "BT-2": "05/01/2026"})
    with pytest.raises(ValueError, match="decimal"):
        Invoice.from_dict({**data, "BG-22": {"BT-115": "ten"}})


def test_french_helpers_read_siren_and_billing_mode() -> None:
    invoice = _invoice(
        business_process="S1",
        seller=Seller(legal_registration_id=Identifier(value="123456782", scheme="0002")),
    )
    assert invoice.seller is not None
    assert invoice.seller.siren == "123456782"
    assert invoice.billing_mode == "S1"
    assert Seller(legal_registration_id=Identifier(value="x", scheme="0009")).siren is None


def test_amount_currency_follows_bt5_except_bt111() -> None:
    invoice = _invoice(tax_currency_code="SEK")
    assert invoice.currency_of("BT-112") == "EUR"
    assert invoice.currency_of("BT-111") == "SEK"


def test_seller_identifiers_without_a_scheme_come_first() -> None:
    # A list is frozen into a tuple (and put in order) by the model.
    seller = Seller(identifiers=[Identifier(value="a", scheme="0088"),  # type: ignore[arg-type]
                                 Identifier(value="b")])
    assert [i.value for i in seller.identifiers] == ["b", "a"]
