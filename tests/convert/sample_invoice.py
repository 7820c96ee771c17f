"""A hand-built invoice in the model, used to render pages without depending on a syntax reader."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from facturflow.model import (
    AllowanceCharge,
    Buyer,
    Contact,
    CreditTransfer,
    DocumentTotals,
    ElectronicAddress,
    Identifier,
    Invoice,
    InvoiceLine,
    Item,
    LineVat,
    Note,
    PaymentInstructions,
    Period,
    PostalAddress,
    PriceDetails,
    Seller,
    VatBreakdown,
)


def sample_invoice(lines: int = 3) -> Invoice:
    """A French B2B invoice with `lines` lines at 20 % and one document-level allowance."""
    invoice_lines = []
    for n in range(1, lines + 1):
        invoice_lines.append(
            InvoiceLine(
                id=str(n),
                quantity=Decimal("2"),
                unit_code="C62",
                net_amount=Decimal("200.00"),
                price=PriceDetails(net_price=Decimal("100.00")),
                vat=LineVat(category_code="S", rate=Decimal("20")),
                item=Item(name=f"Prestation de conseil n° {n}", description="Journée sur site"),
            )
        )
    net = Decimal("200.00") * lines
    allowance = Decimal("10.00")
    base = net - allowance
    vat = (base * Decimal("0.20")).quantize(Decimal("0.01"))
    return Invoice(
        number="FA-2026-0042",
        issue_date=date(2026, 1, 31),
        type_code="380",
        currency_code="EUR",
        due_date=date(2026, 3, 2),
        buyer_reference="SERVICE-ACHATS",
        purchase_order_reference="PO-7781",
        payment_terms="Paiement à 30 jours fin de mois",
        business_process="S1",
        specification_id="urn:cen.eu:en16931:2017",
        notes=(
            Note(subject_code="PMT",
                 text="Indemnité forfaitaire pour frais de recouvrement : 40 €."),
        ),
        seller=Seller(
            name="Atelier Éléonore SAS",
            legal_registration_id=Identifier(value="123456782", scheme="0002"),
            vat_id="FR32123456782",
            electronic_address=ElectronicAddress(value="123456782", scheme="0225"),
            postal_address=PostalAddress(line1="12 rue de la Paix", city="Paris", post_code="75002",
                                         country_code="FR"),
            contact=Contact(point="Service facturation", email="factures@eleonore.example"),
        ),
        buyer=Buyer(
            name="Société Générale des Œuvres",
            legal_registration_id=Identifier(value="987654321", scheme="0002"),
            vat_id="FR45987654321",
            electronic_address=ElectronicAddress(value="987654321", scheme="0225"),
            postal_address=PostalAddress(line1="3 place Bellecour", city="Lyon", post_code="69002",
                                         country_code="FR"),
        ),
        invoicing_period=Period(start_date=date(2026, 1, 1), end_date=date(2026, 1, 31)),
        payment_instructions=PaymentInstructions(
            means_code="58",
            remittance_information="FA-2026-0042",
            credit_transfers=(CreditTransfer(account_id="FR7630006000011234567890189",
                                             account_name="Atelier Éléonore",
                                             service_provider_id="AGRIFRPP"),),
        ),
        allowances=(AllowanceCharge(amount=allowance, vat_category_code="S",
                                    vat_rate=Decimal("20"), reason="Remise fidélité",
                                    reason_code="95"),),
        totals=DocumentTotals(
            line_net_total=net,
            allowance_total=allowance,
            tax_exclusive_amount=base,
            vat_total=vat,
            tax_inclusive_amount=base + vat,
            amount_due=base + vat,
        ),
        vat_breakdown=(VatBreakdown(taxable_amount=base, tax_amount=vat, category_code="S",
                                    rate=Decimal("20")),),
        lines=tuple(invoice_lines),
    )
