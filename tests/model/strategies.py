"""Hypothesis strategies that build EN 16931 invoices in the model.

They cover every business term the bindings map, within what both syntaxes can carry (the
limits are listed in the README: e.g. UBL needs a payment means code to carry any payment
instruction, and BT-7/BT-8 travel in CII's VAT breakdowns).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from hypothesis import strategies as st

from facturflow.model import (
    AllowanceCharge,
    BinaryObject,
    Buyer,
    ClassificationIdentifier,
    Contact,
    CreditTransfer,
    Delivery,
    DirectDebit,
    DocumentTotals,
    ElectronicAddress,
    Identifier,
    Invoice,
    InvoiceLine,
    Item,
    ItemAttribute,
    LineVat,
    Note,
    Payee,
    PaymentCard,
    PaymentInstructions,
    Period,
    PostalAddress,
    PrecedingInvoice,
    PriceDetails,
    Seller,
    SupportingDocument,
    TaxRepresentative,
    VatBreakdown,
    codes,
)

T = TypeVar("T")

# Printable text without the characters a binding gives meaning to ('#' opens a UBL note
# subject code) and without outer blanks (readers strip them).
_ALPHABET = st.characters(
    codec="utf-8", categories=("L", "N", "P", "Zs", "S"), exclude_characters="#\x85\xa0"
)
text = st.text(_ALPHABET, min_size=1, max_size=30).map(str.strip).filter(
    lambda s: bool(s) and s != "NA"
)
dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31))
amounts = st.decimals(min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2,
                      allow_nan=False, allow_infinity=False)
positive = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2,
                       allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=Decimal("-10000"), max_value=Decimal("10000"), places=4,
                         allow_nan=False, allow_infinity=False)
percent = st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2,
                      allow_nan=False, allow_infinity=False)


def code(code_list: str) -> st.SearchStrategy[str]:
    return st.sampled_from(sorted(codes(code_list)))


def opt(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.none() | strategy


def nonempty(cls: type[T], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[T]:
    """A group with at least one term: an empty group is not written, so cannot read back."""
    return st.builds(cls, **fields).filter(lambda group: group != cls())


def some(strategy: st.SearchStrategy[T], size: int = 3) -> st.SearchStrategy[tuple[T, ...]]:
    return st.lists(strategy, max_size=size).map(tuple)


identifier = st.builds(Identifier, value=text, scheme=opt(code("icd")))
electronic_address = st.builds(ElectronicAddress, value=text, scheme=code("eas"))


def address() -> st.SearchStrategy[PostalAddress]:
    return nonempty(PostalAddress, line1=opt(text), line2=opt(text), line3=opt(text),
                    city=opt(text), post_code=opt(text), country_subdivision=opt(text),
                    country_code=opt(code("country")))


contact = nonempty(Contact, point=opt(text), telephone=opt(text), email=opt(text))

seller = nonempty(
    Seller, name=opt(text), trading_name=opt(text), identifiers=some(identifier),
    legal_registration_id=opt(identifier), vat_id=opt(text), tax_registration_id=opt(text),
    additional_legal_information=opt(text), electronic_address=opt(electronic_address),
    postal_address=opt(address()), contact=opt(contact),
)
buyer = nonempty(
    Buyer, name=opt(text), trading_name=opt(text), identifier=opt(identifier),
    legal_registration_id=opt(identifier), vat_id=opt(text),
    electronic_address=opt(electronic_address), postal_address=opt(address()),
    contact=opt(contact),
)
payee = nonempty(Payee, name=opt(text), identifier=opt(identifier),
                 legal_registration_id=opt(identifier))
tax_representative = nonempty(TaxRepresentative, name=opt(text), vat_id=opt(text),
                              postal_address=opt(address()))
delivery = nonempty(Delivery, party_name=opt(text), location_id=opt(identifier),
                    actual_delivery_date=opt(dates), address=opt(address()))
period = nonempty(Period, start_date=opt(dates), end_date=opt(dates))

payment = st.builds(
    PaymentInstructions,
    means_code=code("payment_means"),  # UBL carries no payment instruction without BT-81
    means_text=opt(text),
    remittance_information=opt(text),
    credit_transfers=some(st.builds(CreditTransfer, account_id=text, account_name=opt(text),
                                    service_provider_id=opt(text))),
    card=opt(st.builds(PaymentCard, primary_account_number=text, holder_name=opt(text))),
    direct_debit=opt(nonempty(DirectDebit, mandate_reference=opt(text), creditor_id=opt(text),
                              debited_account_id=opt(text))),
)


def allowance(kind: str, document: bool) -> st.SearchStrategy[AllowanceCharge]:
    reasons = code("allowance_reason" if kind == "allowance" else "charge_reason")
    vat: dict[str, st.SearchStrategy[Any]] = (
        {"vat_category_code": opt(code("vat_category")), "vat_rate": opt(percent)}
        if document else {}
    )
    return st.builds(AllowanceCharge, amount=amounts, base_amount=opt(amounts),
                     percentage=opt(percent), reason=opt(text), reason_code=opt(reasons), **vat)


totals = nonempty(
    DocumentTotals, line_net_total=opt(amounts), allowance_total=opt(amounts),
    charge_total=opt(amounts), tax_exclusive_amount=opt(amounts), vat_total=opt(amounts),
    tax_inclusive_amount=opt(amounts), prepaid_amount=opt(amounts),
    rounding_amount=opt(amounts), amount_due=opt(amounts),
)
vat_breakdown = st.builds(
    VatBreakdown, taxable_amount=opt(amounts), tax_amount=opt(amounts),
    category_code=code("vat_category"), rate=opt(percent), exemption_reason=opt(text),
    exemption_reason_code=opt(code("vatex")),
)
supporting_document = st.builds(
    SupportingDocument, reference=text, description=opt(text), external_location=opt(text),
    attachment=opt(st.builds(BinaryObject, content=st.binary(min_size=1, max_size=64),
                             mime_code=code("mime"), filename=text)),
)
item = nonempty(
    Item, name=opt(text), description=opt(text), seller_id=opt(text), buyer_id=opt(text),
    standard_id=opt(identifier),
    classifications=some(st.builds(ClassificationIdentifier, value=text,
                                   scheme=opt(code("item_classification")),
                                   version=opt(text))),
    origin_country=opt(code("country")),
    attributes=some(st.builds(ItemAttribute, name=text, value=text)),
)
price = nonempty(PriceDetails, net_price=opt(amounts), discount=opt(amounts),
                 gross_price=opt(amounts), base_quantity=opt(quantities),
                 base_quantity_unit=opt(code("unit")))


@st.composite
def invoice_lines(draw: st.DrawFn) -> tuple[InvoiceLine, ...]:
    count = draw(st.integers(min_value=0, max_value=4))
    ids = [f"L{index + 1}" for index in range(count)]
    lines = []
    for index, line_id in enumerate(ids):
        parent = draw(opt(st.sampled_from(ids[:index]))) if index else None
        lines.append(draw(st.builds(
            InvoiceLine, id=st.just(line_id), note=opt(text), object_ids=some(identifier, 2),
            quantity=opt(quantities), unit_code=opt(code("unit")), net_amount=opt(amounts),
            order_line_reference=opt(text), accounting_reference=opt(text),
            period=opt(period), allowances=some(allowance("allowance", False), 2),
            charges=some(allowance("charge", False), 2), price=opt(price),
            vat=opt(nonempty(LineVat, category_code=opt(code("vat_category")),
                             rate=opt(percent))),
            item=opt(item), parent_line_id=st.just(parent),
            line_status=opt(code("line_status")),
            seller_name=opt(text), seller_global_id=opt(identifier),
            seller_legal_id=opt(identifier), seller_vat_id=opt(text),
            seller_country=opt(code("country")), vat_exemption_reason=opt(text),
            vat_date_code=opt(code("vat_date_code")), vat_amount=opt(amounts),
        )))
    return tuple(lines)


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    """A random invoice that both syntaxes can carry in full."""
    currency = draw(code("currency"))
    # BT-6 may equal BT-5 (it then states nothing: facturflow.model.implied).
    tax_currency = draw(opt(st.one_of(st.just(currency), code("currency"))))
    breakdown = draw(some(vat_breakdown))
    document_totals = draw(opt(totals))
    if breakdown and (document_totals is None or document_totals.vat_total is None) and any(
        b.tax_amount is None for b in breakdown
    ):
        # UBL writes a VAT breakdown inside a cac:TaxTotal whose TaxAmount (BT-110) it needs;
        # without BT-110 only a breakdown with every BT-117 implies it (BR-CO-14).
        document_totals = DocumentTotals(**{**_fields(document_totals or DocumentTotals()),
                                            "vat_total": draw(amounts)})
    if document_totals is not None and tax_currency is not None:
        # BT-111 exists only with a VAT accounting currency (BT-6). When BT-6 is BT-5, both
        # totals are in the same currency, told apart only beside a BT-110: then BT-111 may
        # equal it (BT-6 states nothing) or differ.
        vat_total = document_totals.vat_total
        accounting = draw(opt(amounts)) if tax_currency != currency else (
            None if vat_total is None else draw(st.one_of(st.none(), st.just(vat_total),
                                                          amounts)))
        document_totals = DocumentTotals(**{**_fields(document_totals),
                                            "vat_total_accounting": accounting})
    return Invoice(
        number=draw(text),
        issue_date=draw(dates),
        type_code=draw(code("invoice_type")),
        currency_code=currency,
        tax_currency_code=tax_currency,
        # CII carries BT-7/BT-8 in each VAT breakdown, so they need one.
        tax_point_date=draw(opt(dates)) if breakdown else None,
        tax_point_date_code=draw(opt(code("vat_date_code"))) if breakdown else None,
        due_date=draw(opt(dates)),
        buyer_reference=draw(opt(text)),
        project_reference=draw(opt(text)),
        contract_reference=draw(opt(text)),
        purchase_order_reference=draw(opt(text)),
        sales_order_reference=draw(opt(text)),
        receiving_advice_reference=draw(opt(text)),
        despatch_advice_reference=draw(opt(text)),
        tender_reference=draw(opt(text)),
        invoiced_object_id=draw(opt(identifier)),
        buyer_accounting_reference=draw(opt(text)),
        payment_terms=draw(opt(text)),
        notes=draw(some(st.builds(Note, subject_code=opt(code("text_subject")), text=text))),
        business_process=draw(opt(text)),
        specification_id=draw(opt(text)),
        preceding_invoices=draw(some(st.builds(PrecedingInvoice, reference=text,
                                               issue_date=opt(dates)))),
        seller=draw(opt(seller)),
        buyer=draw(opt(buyer)),
        payee=draw(opt(payee)),
        tax_representative=draw(opt(tax_representative)),
        delivery=draw(opt(delivery)),
        invoicing_period=draw(opt(period)),
        payment_instructions=draw(opt(payment)),
        allowances=draw(some(allowance("allowance", True))),
        charges=draw(some(allowance("charge", True))),
        totals=document_totals,
        vat_breakdown=breakdown,
        supporting_documents=draw(some(supporting_document)),
        lines=draw(invoice_lines()),
    )


def _fields(node: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
