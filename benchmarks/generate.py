"""Deterministic generator of large, valid French e-invoices (UBL 2.1 and CII D16B).

Each invoice has N lines spread over three French VAT rates (20 %, 10 %, 5.5 %), amounts that add up
exactly (line nets, VAT breakdown per rate, document totals), and French parties with Luhn-valid
SIREN numbers, matching VAT numbers and the BR-FR mandatory notes, so that it passes XSD, EN 16931,
the Factur-X EN 16931 profile rules (CII) and the French CTC rules (BR-FR) with no fatal finding.

The same (lines, syntax, seed) always gives the same bytes.

    python -m benchmarks.generate --lines 4000 --syntax ubl -o big.xml
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from xml.sax.saxutils import escape

SYNTAXES = ("ubl", "cii")
CENT = Decimal("0.01")
# (category, rate) pairs used round-robin with a seeded shuffle, so every rate has lines.
VAT_RATES = (Decimal("20.00"), Decimal("10.00"), Decimal("5.50"))
UNITS = ("C62", "H87", "KGM", "HUR", "MTR")
PRODUCTS = (
    "Ramette papier A4 80 g",
    "Cartouche d'encre noire",
    "Prestation de maintenance",
    "Câble réseau Cat. 6",
    "Heure de conseil",
    "Classeur à levier",
    "Livre technique",
    "Café en grains 1 kg",
    "Chaise de bureau",
    "Licence logicielle annuelle",
)


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _luhn_complete(digits: str) -> str:
    """Append the Luhn check digit that makes `digits` + check valid (SIREN/SIRET rule)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)


def _fr_vat(siren: str) -> str:
    key = (12 + 3 * (int(siren) % 97)) % 97
    return f"FR{key:02d}{siren}"


@dataclass(frozen=True)
class Party:
    name: str
    siren: str
    street: str
    city: str
    postcode: str

    @property
    def vat(self) -> str:
        return _fr_vat(self.siren)


@dataclass(frozen=True)
class Line:
    number: int
    name: str
    seller_item_id: str
    quantity: Decimal
    unit: str
    price: Decimal
    rate: Decimal

    @property
    def net(self) -> Decimal:
        return (self.quantity * self.price).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Invoice:
    number: str
    issue_date: str  # YYYY-MM-DD
    due_date: str
    delivery_date: str
    seller: Party
    buyer: Party
    iban: str
    lines: tuple[Line, ...]

    def breakdown(self) -> list[tuple[Decimal, Decimal, Decimal]]:
        """(rate, taxable amount, VAT amount) per rate, in a fixed order (BR-CO-17 rounding)."""
        rows = []
        for rate in VAT_RATES:
            basis = sum((ln.net for ln in self.lines if ln.rate == rate), Decimal("0"))
            if any(ln.rate == rate for ln in self.lines):
                tax = (basis * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
                rows.append((rate, basis, tax))
        return rows

    @property
    def line_total(self) -> Decimal:
        return sum((ln.net for ln in self.lines), Decimal("0"))

    @property
    def tax_total(self) -> Decimal:
        return sum((tax for _, _, tax in self.breakdown()), Decimal("0"))

    @property
    def grand_total(self) -> Decimal:
        return self.line_total + self.tax_total


def build_invoice(lines: int, seed: int = 0) -> Invoice:
    """The invoice model for `lines` lines; deterministic for a given seed."""
    if lines < 1:
        raise ValueError("an invoice needs at least one line")
    rng = random.Random(f"facturflow-bench:{seed}")
    seller = Party(
        "Papeterie Durand SAS",
        _luhn_complete(f"{rng.randrange(10**7, 10**8):08d}"),
        "12 rue des Lilas",
        "Lyon",
        "69003",
    )
    buyer = Party(
        "Bureau Martin SARL",
        _luhn_complete(f"{rng.randrange(10**7, 10**8):08d}"),
        "4 avenue Jean Jaurès",
        "Nantes",
        "44000",
    )
    items = []
    for i in range(1, lines + 1):
        quantity = Decimal(rng.randrange(1, 40))
        if rng.random() < 0.3:
            quantity += Decimal(rng.choice(("0.5", "0.25", "0.75")))
        price = Decimal(rng.randrange(50, 50000)) / 100
        items.append(
            Line(
                number=i,
                name=rng.choice(PRODUCTS),
                seller_item_id=f"ART-{rng.randrange(10000, 99999)}",
                quantity=quantity,
                unit=rng.choice(UNITS),
                price=price,
                rate=VAT_RATES[i % len(VAT_RATES)],
            )
        )
    return Invoice(
        number=f"FA-2026-{seed:04d}-{lines:05d}",
        issue_date="2026-03-02",
        due_date="2026-04-01",
        delivery_date="2026-02-27",
        seller=seller,
        buyer=buyer,
        iban="FR7630006000011234567890189",
        lines=tuple(items),
    )


# ---------------------------------------------------------------------------------------- UBL


def _ubl_party(p: Party, tag: str) -> str:
    return f"""  <cac:{tag}>
    <cac:Party>
      <cbc:EndpointID schemeID="0225">{p.siren}</cbc:EndpointID>
      <cac:PartyName>
        <cbc:Name>{escape(p.name)}</cbc:Name>
      </cac:PartyName>
      <cac:PostalAddress>
        <cbc:StreetName>{escape(p.street)}</cbc:StreetName>
        <cbc:CityName>{escape(p.city)}</cbc:CityName>
        <cbc:PostalZone>{p.postcode}</cbc:PostalZone>
        <cac:Country>
          <cbc:IdentificationCode>FR</cbc:IdentificationCode>
        </cac:Country>
      </cac:PostalAddress>
      <cac:PartyTaxScheme>
        <cbc:CompanyID>{p.vat}</cbc:CompanyID>
        <cac:TaxScheme>
          <cbc:ID>VAT</cbc:ID>
        </cac:TaxScheme>
      </cac:PartyTaxScheme>
      <cac:PartyLegalEntity>
        <cbc:RegistrationName>{escape(p.name)}</cbc:RegistrationName>
        <cbc:CompanyID schemeID="0002">{p.siren}</cbc:CompanyID>
      </cac:PartyLegalEntity>
    </cac:Party>
  </cac:{tag}>
"""


def _ubl_lines(inv: Invoice) -> Iterator[str]:
    for ln in inv.lines:
        yield f"""  <cac:InvoiceLine>
    <cbc:ID>{ln.number}</cbc:ID>
    <cbc:InvoicedQuantity unitCode="{ln.unit}">{ln.quantity}</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">{_money(ln.net)}</cbc:LineExtensionAmount>
    <cac:Item>
      <cbc:Name>{escape(ln.name)}</cbc:Name>
      <cac:SellersItemIdentification>
        <cbc:ID>{ln.seller_item_id}</cbc:ID>
      </cac:SellersItemIdentification>
      <cac:ClassifiedTaxCategory>
        <cbc:ID>S</cbc:ID>
        <cbc:Percent>{ln.rate}</cbc:Percent>
        <cac:TaxScheme>
          <cbc:ID>VAT</cbc:ID>
        </cac:TaxScheme>
      </cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price>
      <cbc:PriceAmount currencyID="EUR">{ln.price}</cbc:PriceAmount>
    </cac:Price>
  </cac:InvoiceLine>
"""


def to_ubl(inv: Invoice) -> bytes:
    subtotals = "".join(
        f"""    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">{_money(basis)}</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="EUR">{_money(tax)}</cbc:TaxAmount>
      <cac:TaxCategory>
        <cbc:ID>S</cbc:ID>
        <cbc:Percent>{rate}</cbc:Percent>
        <cac:TaxScheme>
          <cbc:ID>VAT</cbc:ID>
        </cac:TaxScheme>
      </cac:TaxCategory>
    </cac:TaxSubtotal>
"""
        for rate, basis, tax in inv.breakdown()
    )
    seller = _ubl_party(inv.seller, "AccountingSupplierParty")
    buyer = _ubl_party(inv.buyer, "AccountingCustomerParty")
    head = f"""<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
         xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
         xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>
  <cbc:ProfileID>S1</cbc:ProfileID>
  <cbc:ID>{inv.number}</cbc:ID>
  <cbc:IssueDate>{inv.issue_date}</cbc:IssueDate>
  <cbc:DueDate>{inv.due_date}</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:Note>#PMT#Indemnité forfaitaire pour frais de recouvrement : 40 EUR</cbc:Note>
  <cbc:Note>#PMD#Pénalités de retard : trois fois le taux d'intérêt légal</cbc:Note>
  <cbc:Note>#AAB#Pas d'escompte pour paiement anticipé</cbc:Note>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>ACHAT-{inv.buyer.siren}</cbc:BuyerReference>
{seller}{buyer}\
  <cac:Delivery>
    <cbc:ActualDeliveryDate>{inv.delivery_date}</cbc:ActualDeliveryDate>
  </cac:Delivery>
  <cac:PaymentMeans>
    <cbc:PaymentMeansCode>58</cbc:PaymentMeansCode>
    <cac:PayeeFinancialAccount>
      <cbc:ID>{inv.iban}</cbc:ID>
    </cac:PayeeFinancialAccount>
  </cac:PaymentMeans>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">{_money(inv.tax_total)}</cbc:TaxAmount>
{subtotals}  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">{_money(inv.line_total)}</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">{_money(inv.line_total)}</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">{_money(inv.grand_total)}</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">{_money(inv.grand_total)}</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
"""
    return (head + "".join(_ubl_lines(inv)) + "</Invoice>\n").encode("utf-8")


# ---------------------------------------------------------------------------------------- CII


def _cii_date(iso: str) -> str:
    return iso.replace("-", "")


def _cii_party(p: Party, tag: str) -> str:
    return f"""      <ram:{tag}>
        <ram:Name>{escape(p.name)}</ram:Name>
        <ram:SpecifiedLegalOrganization>
          <ram:ID schemeID="0002">{p.siren}</ram:ID>
        </ram:SpecifiedLegalOrganization>
        <ram:PostalTradeAddress>
          <ram:PostcodeCode>{p.postcode}</ram:PostcodeCode>
          <ram:LineOne>{escape(p.street)}</ram:LineOne>
          <ram:CityName>{escape(p.city)}</ram:CityName>
          <ram:CountryID>FR</ram:CountryID>
        </ram:PostalTradeAddress>
        <ram:URIUniversalCommunication>
          <ram:URIID schemeID="0225">{p.siren}</ram:URIID>
        </ram:URIUniversalCommunication>
        <ram:SpecifiedTaxRegistration>
          <ram:ID schemeID="VA">{p.vat}</ram:ID>
        </ram:SpecifiedTaxRegistration>
      </ram:{tag}>
"""


def _cii_lines(inv: Invoice) -> Iterator[str]:
    for ln in inv.lines:
        yield f"""    <ram:IncludedSupplyChainTradeLineItem>
      <ram:AssociatedDocumentLineDocument>
        <ram:LineID>{ln.number}</ram:LineID>
      </ram:AssociatedDocumentLineDocument>
      <ram:SpecifiedTradeProduct>
        <ram:SellerAssignedID>{ln.seller_item_id}</ram:SellerAssignedID>
        <ram:Name>{escape(ln.name)}</ram:Name>
      </ram:SpecifiedTradeProduct>
      <ram:SpecifiedLineTradeAgreement>
        <ram:NetPriceProductTradePrice>
          <ram:ChargeAmount>{ln.price}</ram:ChargeAmount>
        </ram:NetPriceProductTradePrice>
      </ram:SpecifiedLineTradeAgreement>
      <ram:SpecifiedLineTradeDelivery>
        <ram:BilledQuantity unitCode="{ln.unit}">{ln.quantity}</ram:BilledQuantity>
      </ram:SpecifiedLineTradeDelivery>
      <ram:SpecifiedLineTradeSettlement>
        <ram:ApplicableTradeTax>
          <ram:TypeCode>VAT</ram:TypeCode>
          <ram:CategoryCode>S</ram:CategoryCode>
          <ram:RateApplicablePercent>{ln.rate}</ram:RateApplicablePercent>
        </ram:ApplicableTradeTax>
        <ram:SpecifiedTradeSettlementLineMonetarySummation>
          <ram:LineTotalAmount>{_money(ln.net)}</ram:LineTotalAmount>
        </ram:SpecifiedTradeSettlementLineMonetarySummation>
      </ram:SpecifiedLineTradeSettlement>
    </ram:IncludedSupplyChainTradeLineItem>
"""


def to_cii(inv: Invoice) -> bytes:
    taxes = "".join(
        f"""      <ram:ApplicableTradeTax>
        <ram:CalculatedAmount>{_money(tax)}</ram:CalculatedAmount>
        <ram:TypeCode>VAT</ram:TypeCode>
        <ram:BasisAmount>{_money(basis)}</ram:BasisAmount>
        <ram:CategoryCode>S</ram:CategoryCode>
        <ram:RateApplicablePercent>{rate}</ram:RateApplicablePercent>
      </ram:ApplicableTradeTax>
"""
        for rate, basis, tax in inv.breakdown()
    )
    notes = "".join(
        f"""    <ram:IncludedNote>
      <ram:Content>{escape(text)}</ram:Content>
      <ram:SubjectCode>{code}</ram:SubjectCode>
    </ram:IncludedNote>
"""
        for code, text in (
            ("PMT", "Indemnité forfaitaire pour frais de recouvrement : 40 EUR"),
            ("PMD", "Pénalités de retard : trois fois le taux d'intérêt légal"),
            ("AAB", "Pas d'escompte pour paiement anticipé"),
        )
    )
    head = f"""<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice
    xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
    xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
    xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
    xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:BusinessProcessSpecifiedDocumentContextParameter>
      <ram:ID>S1</ram:ID>
    </ram:BusinessProcessSpecifiedDocumentContextParameter>
    <ram:GuidelineSpecifiedDocumentContextParameter>
      <ram:ID>urn:cen.eu:en16931:2017</ram:ID>
    </ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>{inv.number}</ram:ID>
    <ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime>
      <udt:DateTimeString format="102">{_cii_date(inv.issue_date)}</udt:DateTimeString>
    </ram:IssueDateTime>
{notes}  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
"""
    tail = f"""    <ram:ApplicableHeaderTradeAgreement>
      <ram:BuyerReference>ACHAT-{inv.buyer.siren}</ram:BuyerReference>
{_cii_party(inv.seller, "SellerTradeParty")}{_cii_party(inv.buyer, "BuyerTradeParty")}\
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeDelivery>
      <ram:ActualDeliverySupplyChainEvent>
        <ram:OccurrenceDateTime>
          <udt:DateTimeString format="102">{_cii_date(inv.delivery_date)}</udt:DateTimeString>
        </ram:OccurrenceDateTime>
      </ram:ActualDeliverySupplyChainEvent>
    </ram:ApplicableHeaderTradeDelivery>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementPaymentMeans>
        <ram:TypeCode>58</ram:TypeCode>
        <ram:PayeePartyCreditorFinancialAccount>
          <ram:IBANID>{inv.iban}</ram:IBANID>
        </ram:PayeePartyCreditorFinancialAccount>
      </ram:SpecifiedTradeSettlementPaymentMeans>
{taxes}      <ram:SpecifiedTradePaymentTerms>
        <ram:DueDateDateTime>
          <udt:DateTimeString format="102">{_cii_date(inv.due_date)}</udt:DateTimeString>
        </ram:DueDateDateTime>
      </ram:SpecifiedTradePaymentTerms>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:LineTotalAmount>{_money(inv.line_total)}</ram:LineTotalAmount>
        <ram:TaxBasisTotalAmount>{_money(inv.line_total)}</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">{_money(inv.tax_total)}</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>{_money(inv.grand_total)}</ram:GrandTotalAmount>
        <ram:DuePayableAmount>{_money(inv.grand_total)}</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
"""
    return (head + "".join(_cii_lines(inv)) + tail).encode("utf-8")


def generate(lines: int, syntax: str = "ubl", seed: int = 0) -> bytes:
    """A valid invoice of `lines` lines in `syntax` ('ubl' or 'cii') as UTF-8 XML bytes."""
    inv = build_invoice(lines, seed)
    if syntax == "ubl":
        return to_ubl(inv)
    if syntax == "cii":
        return to_cii(inv)
    raise ValueError(f"unknown syntax {syntax!r}; expected one of {SYNTAXES}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--syntax", choices=SYNTAXES, default="ubl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    data = generate(args.lines, args.syntax, args.seed)
    if args.output:
        args.output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
