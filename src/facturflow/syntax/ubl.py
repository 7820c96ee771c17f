"""UBL 2.1 Invoice and CreditNote <-> the EN 16931 model.

The table `BINDINGS` follows CEN/TS 16931-3-2: one row per business term, used for both
`read_ubl` and `write_ubl`. A CreditNote maps to the same model: its CreditNoteTypeCode,
CreditNoteLine and CreditedQuantity fill the same terms as an Invoice's, and amounts keep their
sign (the binding does not negate them); the few places where the two documents differ (BT-9 and
BT-11) are path tokens. The model is written as a CreditNote when its type code is a credit note
code (381, 261, ...) unless the caller says otherwise.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from lxml import etree

from ..model.codelists import as_read
from ..model.implied import with_implied_vat_total
from ..model.invoice import (
    CREDIT_NOTE_TYPES,
    AllowanceCharge,
    CreditTransfer,
    DirectDebit,
    Invoice,
    Note,
    PaymentCard,
    PaymentInstructions,
    PostalAddress,
)
from ._engine import (
    B,
    Bind,
    Engine,
    G,
    Tokens,
    build_invoice,
    first_text,
    model_rows,
    parse_decimal,
)
from ._xsdorder import sort_tree

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDITNOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
ENGINE = Engine(NS, "ubl")
UblDocument = Literal["invoice", "creditnote"]

VAT = "[cac:TaxScheme/cbc:ID='VAT']"
ALLOWANCE = "cac:AllowanceCharge[cbc:ChargeIndicator='false']"
CHARGE = "cac:AllowanceCharge[cbc:ChargeIndicator='true']"
# xs:boolean also spells false and true as 0 and 1: reading accepts both, writing uses words.
ALLOWANCE_READ = ("cac:AllowanceCharge[normalize-space(cbc:ChargeIndicator)='false'"
                  " or normalize-space(cbc:ChargeIndicator)='0']")
CHARGE_READ = ("cac:AllowanceCharge[normalize-space(cbc:ChargeIndicator)='true'"
               " or normalize-space(cbc:ChargeIndicator)='1']")
SEPA = "[cbc:ID/@schemeID='SEPA']"
SELLER = "cac:AccountingSupplierParty/cac:Party"

# Path tokens of the two UBL documents (CEN/TS 16931-3-2 binds BT-9 and BT-11 differently).
DOCUMENT_TOKENS: dict[str, dict[str, str]] = {
    "invoice": {
        "Line": "cac:InvoiceLine",
        "Qty": "cbc:InvoicedQuantity",
        "TypeCode": "cbc:InvoiceTypeCode",
        "DueDate": "cbc:DueDate",
        "Project": "cac:ProjectReference/cbc:ID",
        "NotProject": "",
    },
    "creditnote": {
        "Line": "cac:CreditNoteLine",
        "Qty": "cbc:CreditedQuantity",
        "TypeCode": "cbc:CreditNoteTypeCode",
        "DueDate": "cac:PaymentMeans/cbc:PaymentDueDate",
        "Project": "cac:AdditionalDocumentReference[cbc:DocumentTypeCode='50']/cbc:ID",
        "NotProject": " and not(cbc:DocumentTypeCode='50')",
    },
}
PARTY_ID = (("value", "cbc:ID"), ("scheme", "cbc:ID/@schemeID"))


# PostalAddress fields in the order of UBL's schema.
_ADDRESS = {"line1": "cbc:StreetName", "line2": "cbc:AdditionalStreetName",
            "line3": "cac:AddressLine/cbc:Line", "city": "cbc:CityName",
            "post_code": "cbc:PostalZone", "country_subdivision": "cbc:CountrySubentity",
            "country_code": "cac:Country/cbc:IdentificationCode"}


def _address(term: str, path: str = "cac:PostalAddress") -> Bind:
    return G(term, path, *model_rows(PostalAddress, term, _ADDRESS))


def _contact(term: str, point: str, phone: str, email: str) -> Bind:
    return G(term, "cac:Contact",
             B(point, "cbc:Name"), B(phone, "cbc:Telephone"), B(email, "cbc:ElectronicMail"))


# AllowanceCharge fields, those of every level then the document level's VAT.
_ALLOWANCE = {"amount": "cbc:Amount", "base_amount": "cbc:BaseAmount",
              "percentage": "cbc:MultiplierFactorNumeric", "reason": "cbc:AllowanceChargeReason",
              "reason_code": "cbc:AllowanceChargeReasonCode"}
_ALLOWANCE_VAT = {"vat_category_code": f"cac:TaxCategory{VAT}/cbc:ID",
                  "vat_rate": f"cac:TaxCategory{VAT}/cbc:Percent"}


def _allowances(term: str, path: str, document: bool) -> Bind:
    read = ALLOWANCE_READ if path == ALLOWANCE else CHARGE_READ
    rows = model_rows(AllowanceCharge, term, _ALLOWANCE)
    if document:
        rows += model_rows(AllowanceCharge, term, _ALLOWANCE_VAT)
    return G(term, path, *rows, read=read)


# -- custom rows ---------------------------------------------------------------------------

_NOTE = re.compile(r"#([A-Z0-9]{3})#(.*)", re.DOTALL)


def _read_notes(element: etree._Element, tokens: Tokens) -> tuple[Note, ...]:
    notes = []
    for node in element.iterfind("cbc:Note", NS):
        text = node.text or ""
        if not text.strip():
            continue
        # CEN/TS 16931-3-2: the subject code (BT-21) prefixes the text as #CODE#. The note
        # (BT-22, Text) is kept as stated, line breaks included, like every Text term.
        match = _NOTE.fullmatch(text.lstrip())
        if match:
            notes.append(Note(subject_code=match.group(1), text=match.group(2)))
        else:
            notes.append(Note(text=text))
    return tuple(notes)


def _write_notes(element: etree._Element, value: tuple[Note, ...], tokens: Tokens) -> None:
    for note in value:
        node = etree.SubElement(element, f"{{{NS['cbc']}}}Note")
        node.text = f"#{note.subject_code}#{note.text}" if note.subject_code else note.text


def _first(node: etree._Element, path: str, verbatim: bool = False) -> str | None:
    return first_text(node, path, NS, verbatim=verbatim)


def _read_payment(element: etree._Element, tokens: Tokens) -> PaymentInstructions | None:
    code = text = remittance = None
    transfers: list[CreditTransfer] = []
    card: PaymentCard | None = None
    mandate = debited = None
    for means in element.iterfind("cac:PaymentMeans", NS):
        code = code or _first(means, "cbc:PaymentMeansCode")
        text = text or _first(means, "cbc:PaymentMeansCode/@name", True)
        remittance = remittance or _first(means, "cbc:PaymentID", True)
        for account in means.iterfind("cac:PayeeFinancialAccount", NS):
            transfer = CreditTransfer(
                account_id=_first(account, "cbc:ID"),
                account_name=_first(account, "cbc:Name", True),
                service_provider_id=_first(account, "cac:FinancialInstitutionBranch/cbc:ID"),
            )
            if transfer != CreditTransfer():
                transfers.append(transfer)
        pan = _first(means, "cac:CardAccount/cbc:PrimaryAccountNumberID")
        if pan and card is None:
            card = PaymentCard(primary_account_number=pan,
                               holder_name=_first(means, "cac:CardAccount/cbc:HolderName", True))
        mandate = mandate or _first(means, "cac:PaymentMandate/cbc:ID")
        debited = debited or _first(means, "cac:PaymentMandate/cac:PayerFinancialAccount/cbc:ID")
    creditor = _first(element, f"{SELLER}/cac:PartyIdentification/cbc:ID[@schemeID='SEPA']"
                               " | cac:PayeeParty/cac:PartyIdentification/cbc:ID"
                               "[@schemeID='SEPA']")
    debit = DirectDebit(mandate_reference=mandate, creditor_id=creditor,
                        debited_account_id=debited)
    result = PaymentInstructions(
        means_code=code, means_text=text, remittance_information=remittance,
        credit_transfers=tuple(transfers), card=card,
        direct_debit=None if debit == DirectDebit() else debit,
    )
    return None if result == PaymentInstructions() else result


def _write_payment(element: etree._Element, value: PaymentInstructions, tokens: Tokens) -> None:
    def put(node: etree._Element, path: str, text: str | None) -> None:
        if text is not None:
            ENGINE._set(ENGINE._walk(node, path, reuse_last=True), text)

    debit = value.direct_debit
    if debit and debit.creditor_id:
        ident = etree.SubElement(ENGINE._walk(element, SELLER, reuse_last=True),
                                 f"{{{NS['cac']}}}PartyIdentification")
        put(ident, "cbc:ID", debit.creditor_id)
        put(ident, "cbc:ID/@schemeID", "SEPA")
    if value.means_code is None:
        return  # UBL requires a PaymentMeansCode for any other payment term
    # One cac:PaymentMeans per credit transfer account, as CEN/TS 16931-3-2 binds BG-17.
    for index in range(max(1, len(value.credit_transfers))):
        means = etree.SubElement(element, f"{{{NS['cac']}}}PaymentMeans")
        put(means, "cbc:PaymentMeansCode", value.means_code)
        if index == 0:  # UBL-SR-46 (and the reader) want the text and the remittance once
            put(means, "cbc:PaymentMeansCode/@name", value.means_text)
            put(means, "cbc:PaymentID", value.remittance_information)
        if index == 0 and value.card:
            put(means, "cac:CardAccount/cbc:PrimaryAccountNumberID",
                value.card.primary_account_number)
            put(means, "cac:CardAccount/cbc:NetworkID", "NA")
            put(means, "cac:CardAccount/cbc:HolderName", value.card.holder_name)
        if value.credit_transfers:
            transfer = value.credit_transfers[index]
            account = etree.SubElement(means, f"{{{NS['cac']}}}PayeeFinancialAccount")
            put(account, "cbc:ID", transfer.account_id)
            put(account, "cbc:Name", transfer.account_name)
            put(account, "cac:FinancialInstitutionBranch/cbc:ID", transfer.service_provider_id)
        if index == 0 and debit and (debit.mandate_reference or debit.debited_account_id):
            put(means, "cac:PaymentMandate/cbc:ID", debit.mandate_reference)
            put(means, "cac:PaymentMandate/cac:PayerFinancialAccount/cbc:ID",
                debit.debited_account_id)


def _tax_totals(summation: etree._Element, currency: str) -> list[etree._Element]:
    parent = summation.getparent()
    assert parent is not None
    found = []
    for total in parent.iterfind("cac:TaxTotal", NS):
        amount = total.find("cbc:TaxAmount", NS)
        if amount is not None and (amount.get("currencyID") or "").strip() == currency:
            found.append(total)
    return found


def _document_tax_total(totals: list[etree._Element]) -> etree._Element | None:
    """BT-110's cac:TaxTotal among those in the invoice currency: the first with a VAT
    breakdown, else the first. (When BT-6 is BT-5, BT-111's TaxTotal, without breakdown, may
    come before it.)"""
    broken_down = [t for t in totals if t.find("cac:TaxSubtotal", NS) is not None]
    return broken_down[0] if broken_down else (totals[0] if totals else None)


def _tax_amount(total: etree._Element | None, term: str) -> Any:
    text = _first(total, "cbc:TaxAmount") if total is not None else None
    return None if text is None else parse_decimal(term, text)


def _read_vat_total(summation: etree._Element, tokens: Tokens) -> Any:
    """BT-110: the TaxAmount of the document's cac:TaxTotal in the invoice currency (BT-5)."""
    currency = tokens.get("currency") or ""
    return _tax_amount(_document_tax_total(_tax_totals(summation, currency)), "BT-110")


def _append_tax_total(summation: etree._Element, currency: str, text: str) -> None:
    """A cac:TaxTotal with only its cbc:TaxAmount, after the document's other children."""
    parent = summation.getparent()
    assert parent is not None
    total = etree.SubElement(parent, f"{{{NS['cac']}}}TaxTotal")
    amount = etree.SubElement(total, f"{{{NS['cbc']}}}TaxAmount", currencyID=currency)
    amount.text = text


def _write_vat_total(summation: etree._Element, value: Any, tokens: Tokens) -> None:
    _append_tax_total(summation, tokens["currency"], format(value, "f"))


def _read_accounting_vat(summation: etree._Element, tokens: Tokens) -> Any:
    """BT-111: the cac:TaxTotal in the VAT accounting currency (BT-6). When BT-6 is BT-5, the
    single TaxTotal, which then states both totals, else a TaxTotal without breakdown other than
    BT-110's (see _document_tax_total)."""
    tax_currency = tokens.get("tax_currency")
    if not tax_currency:
        return None
    totals = _tax_totals(summation, tax_currency)
    if tax_currency == tokens.get("currency") and len(totals) > 1:
        document_total = _document_tax_total(totals)
        totals = [t for t in totals if t is not document_total
                  and t.find("cac:TaxSubtotal", NS) is None]
    return _tax_amount(totals[0] if totals else None, "BT-111")


def _write_accounting_vat(summation: etree._Element, value: Any, tokens: Tokens) -> None:
    tax_currency = tokens["tax_currency"]
    text = format(value, "f")
    same = _tax_totals(summation, tax_currency)
    if tax_currency == tokens["currency"] and len(same) == 1 and (
        _first(same[0], "cbc:TaxAmount") == text
    ):
        return  # one TaxTotal already states it (BT-6 = BT-5 and BT-111 = BT-110)
    _append_tax_total(summation, tax_currency, text)


LINE = G(
    "BG-25", "{Line}",
    B("BT-126", "cbc:ID"),
    B("BT-127", "cbc:Note"),
    B("BT-129", "{Qty}"),
    B("BT-130", "{Qty}/@unitCode"),
    B("BT-131", "cbc:LineExtensionAmount"),
    B("BT-133", "cbc:AccountingCost"),
    G("BG-26", "cac:InvoicePeriod",
      B("BT-134", "cbc:StartDate"),
      B("BT-135", "cbc:EndDate")),
    B("BT-132", "cac:OrderLineReference/cbc:LineID"),
    # EXTENDED-CTC-FR sub-lines: the parent line and the sub-type ride on a line-level billing
    # reference to the invoice itself (its BT-1), as the AFNOR XP Z12-012 UBL examples do.
    B("EXT-FR-FE-162", "cac:BillingReference/cac:BillingReferenceLine/cbc:ID",
      fill=(("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", "{number}"),)),
    B("EXT-FR-FE-163", "cac:BillingReference/cac:InvoiceDocumentReference/cbc:DocumentStatusCode",
      fill=(("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID", "{number}"),)),
    B("BT-128", "cac:DocumentReference[cbc:DocumentTypeCode='130']", parts=PARTY_ID),
    # EXTENDED-CTC-FR multi-vendor lines (AFNOR XP Z12-012 UBL examples): the line seller is
    # the item's cac:ManufacturerParty; the line VAT amount a line-level cac:TaxTotal.
    B("EXT-FR-FE-164", "cac:Item/cac:ManufacturerParty/cac:PartyLegalEntity/cbc:RegistrationName"),
    B("EXT-FR-FE-166", "cac:Item/cac:ManufacturerParty/cac:PartyIdentification",
      parts=PARTY_ID),
    B("EXT-FR-FE-167", "cac:Item/cac:ManufacturerParty/cac:PartyLegalEntity/cbc:CompanyID"),
    B("EXT-FR-FE-168", f"cac:Item/cac:ManufacturerParty/cac:PartyTaxScheme{VAT}/cbc:CompanyID"),
    B("EXT-FR-FE-177",
      "cac:Item/cac:ManufacturerParty/cac:PostalAddress/cac:Country/cbc:IdentificationCode"),
    B("EXT-FR-FE-178", f"cac:Item/cac:ClassifiedTaxCategory{VAT}/cbc:TaxExemptionReason"),
    B("EXT-FR-FE-180", "cac:InvoicePeriod/cbc:DescriptionCode"),
    B("EXT-FR-FE-181", "cac:TaxTotal/cbc:TaxAmount"),
    _allowances("BG-27", ALLOWANCE, False),
    _allowances("BG-28", CHARGE, False),
    G("BG-31", "cac:Item",
      B("BT-154", "cbc:Description"),
      B("BT-153", "cbc:Name"),
      B("BT-156", "cac:BuyersItemIdentification/cbc:ID"),
      B("BT-155", "cac:SellersItemIdentification/cbc:ID"),
      B("BT-157", "cac:StandardItemIdentification/cbc:ID"),
      B("BT-159", "cac:OriginCountry/cbc:IdentificationCode"),
      B("BT-158", "cac:CommodityClassification", parts=(
          ("value", "cbc:ItemClassificationCode"),
          ("scheme", "cbc:ItemClassificationCode/@listID"),
          ("version", "cbc:ItemClassificationCode/@listVersionID"))),
      G("BG-32", "cac:AdditionalItemProperty",
        B("BT-160", "cbc:Name"),
        B("BT-161", "cbc:Value"))),
    G("BG-30", f"cac:Item/cac:ClassifiedTaxCategory{VAT}",
      B("BT-151", "cbc:ID"),
      B("BT-152", "cbc:Percent")),
    G("BG-29", "cac:Price",
      B("BT-146", "cbc:PriceAmount"),
      B("BT-149", "cbc:BaseQuantity"),
      B("BT-150", "cbc:BaseQuantity/@unitCode"),
      B("BT-147", f"{ALLOWANCE}/cbc:Amount", null="0", read=f"{ALLOWANCE_READ}/cbc:Amount"),
      # UBL requires the allowance amount: a gross price alone gets an explicit zero discount.
      B("BT-148", f"{ALLOWANCE}/cbc:BaseAmount", read=f"{ALLOWANCE_READ}/cbc:BaseAmount",
        fill=((f"{ALLOWANCE}/cbc:Amount", "0"),
              (f"{ALLOWANCE}/cbc:Amount/@currencyID", "{currency}")))),
)

BINDINGS: tuple[Bind, ...] = (
    B("BT-24", "cbc:CustomizationID"),
    B("BT-23", "cbc:ProfileID"),
    B("BT-1", "cbc:ID"),
    B("BT-2", "cbc:IssueDate"),
    B("BT-3", "{TypeCode}"),
    B("BG-1", "cbc:Note", custom=(_read_notes, _write_notes)),
    B("BT-7", "cbc:TaxPointDate"),
    B("BT-5", "cbc:DocumentCurrencyCode"),
    B("BT-6", "cbc:TaxCurrencyCode"),
    B("BT-19", "cbc:AccountingCost"),
    B("BT-10", "cbc:BuyerReference"),
    G("BG-14", "cac:InvoicePeriod",
      B("BT-73", "cbc:StartDate"),
      B("BT-74", "cbc:EndDate")),
    B("BT-8", "cac:InvoicePeriod/cbc:DescriptionCode"),
    B("BT-13", "cac:OrderReference/cbc:ID", null="NA"),
    # UBL requires the order ID: a sales order reference alone gets the CEN placeholder "NA".
    B("BT-14", "cac:OrderReference/cbc:SalesOrderID",
      fill=(("cac:OrderReference/cbc:ID", "NA"),)),
    G("BG-3", "cac:BillingReference[cac:InvoiceDocumentReference]",
      B("BT-25", "cac:InvoiceDocumentReference/cbc:ID"),
      B("BT-26", "cac:InvoiceDocumentReference/cbc:IssueDate")),
    B("BT-16", "cac:DespatchDocumentReference/cbc:ID"),
    B("BT-15", "cac:ReceiptDocumentReference/cbc:ID"),
    B("BT-17", "cac:OriginatorDocumentReference/cbc:ID"),
    B("BT-12", "cac:ContractDocumentReference/cbc:ID"),
    G("BG-24", "cac:AdditionalDocumentReference",
      B("BT-122", "cbc:ID"),
      B("BT-123", "cbc:DocumentDescription"),
      B("BT-125", "cac:Attachment/cbc:EmbeddedDocumentBinaryObject"),
      B("BT-124", "cac:Attachment/cac:ExternalReference/cbc:URI"),
      read="cac:AdditionalDocumentReference[not(cbc:DocumentTypeCode='130'){NotProject}]"),
    B("BT-18", "cac:AdditionalDocumentReference[cbc:DocumentTypeCode='130']", parts=PARTY_ID),
    B("BT-11", "{Project}"),
    G("BG-4", SELLER,
      B("BT-34", "cbc:EndpointID"),
      B("BT-29", "cac:PartyIdentification", parts=PARTY_ID,
        read="cac:PartyIdentification[not(cbc:ID/@schemeID='SEPA')]"),
      B("BT-28", "cac:PartyName/cbc:Name"),
      _address("BG-5"),
      B("BT-31", f"cac:PartyTaxScheme{VAT}/cbc:CompanyID"),
      B("BT-32", "cac:PartyTaxScheme[cac:TaxScheme/cbc:ID='FC']/cbc:CompanyID",
        read="cac:PartyTaxScheme[not(cac:TaxScheme/cbc:ID='VAT')]/cbc:CompanyID"),
      B("BT-27", "cac:PartyLegalEntity/cbc:RegistrationName"),
      B("BT-30", "cac:PartyLegalEntity/cbc:CompanyID"),
      B("BT-33", "cac:PartyLegalEntity/cbc:CompanyLegalForm"),
      _contact("BG-6", "BT-41", "BT-42", "BT-43")),
    G("BG-7", "cac:AccountingCustomerParty/cac:Party",
      B("BT-49", "cbc:EndpointID"),
      B("BT-46", "cac:PartyIdentification", parts=PARTY_ID),
      B("BT-45", "cac:PartyName/cbc:Name"),
      _address("BG-8"),
      B("BT-48", f"cac:PartyTaxScheme{VAT}/cbc:CompanyID"),
      B("BT-44", "cac:PartyLegalEntity/cbc:RegistrationName"),
      B("BT-47", "cac:PartyLegalEntity/cbc:CompanyID"),
      _contact("BG-9", "BT-56", "BT-57", "BT-58")),
    G("BG-10", "cac:PayeeParty",
      B("BT-60", "cac:PartyIdentification", parts=PARTY_ID,
        read="cac:PartyIdentification[not(cbc:ID/@schemeID='SEPA')]"),
      B("BT-59", "cac:PartyName/cbc:Name"),
      B("BT-61", "cac:PartyLegalEntity/cbc:CompanyID")),
    G("BG-11", "cac:TaxRepresentativeParty",
      B("BT-62", "cac:PartyName/cbc:Name"),
      _address("BG-12"),
      B("BT-63", f"cac:PartyTaxScheme{VAT}/cbc:CompanyID")),
    G("BG-13", "cac:Delivery",
      B("BT-72", "cbc:ActualDeliveryDate"),
      B("BT-71", "cac:DeliveryLocation/cbc:ID"),
      _address("BG-15", "cac:DeliveryLocation/cac:Address"),
      B("BT-70", "cac:DeliveryParty/cac:PartyName/cbc:Name")),
    B("BG-16", "cac:PaymentMeans", custom=(_read_payment, _write_payment)),
    B("BT-9", "{DueDate}"),
    B("BT-20", "cac:PaymentTerms/cbc:Note"),
    _allowances("BG-20", ALLOWANCE, True),
    _allowances("BG-21", CHARGE, True),
    G("BG-22", "cac:LegalMonetaryTotal",
      B("BT-106", "cbc:LineExtensionAmount"),
      B("BT-109", "cbc:TaxExclusiveAmount"),
      B("BT-112", "cbc:TaxInclusiveAmount"),
      B("BT-107", "cbc:AllowanceTotalAmount"),
      B("BT-108", "cbc:ChargeTotalAmount"),
      B("BT-113", "cbc:PrepaidAmount"),
      B("BT-114", "cbc:PayableRoundingAmount"),
      B("BT-115", "cbc:PayableAmount"),
      # BT-110/BT-111 sit in cac:TaxTotal, told apart by currency, outside the monetary total.
      B("BT-110", "../cac:TaxTotal[cbc:TaxAmount/@currencyID='{currency}']/cbc:TaxAmount",
        custom=(_read_vat_total, _write_vat_total)),
      B("BT-111", "../cac:TaxTotal[cbc:TaxAmount/@currencyID='{tax_currency}']/cbc:TaxAmount",
        custom=(_read_accounting_vat, _write_accounting_vat))),
    G("BG-23", "cac:TaxTotal[cbc:TaxAmount/@currencyID='{currency}']/cac:TaxSubtotal",
      B("BT-116", "cbc:TaxableAmount"),
      B("BT-117", "cbc:TaxAmount"),
      B("BT-118", f"cac:TaxCategory{VAT}/cbc:ID"),
      B("BT-119", f"cac:TaxCategory{VAT}/cbc:Percent"),
      B("BT-121", f"cac:TaxCategory{VAT}/cbc:TaxExemptionReasonCode"),
      B("BT-120", f"cac:TaxCategory{VAT}/cbc:TaxExemptionReason"),
      # UBL requires the VAT total beside the breakdown: write_ubl makes the implied BT-110
      # explicit; when a BT-117 is missing too, it is written as an explicit zero (BG-22 is
      # written first, see the table order, so a BT-110 wins).
      fill=(("../cbc:TaxAmount", "0"),)),
    LINE,
)


def read_ubl(tree: etree._ElementTree | etree._Element) -> Invoice:
    """Read a UBL 2.1 Invoice or CreditNote into the model.

    Raises BindingError (a ValueError naming the business term) on a value the model refuses.
    """
    root = tree.getroot() if isinstance(tree, etree._ElementTree) else tree
    document: UblDocument = "creditnote" if root.tag == f"{{{NS_CREDITNOTE}}}CreditNote" \
        else "invoice"
    tokens = dict(DOCUMENT_TOKENS[document])
    tokens["currency"] = _first(root, "cbc:DocumentCurrencyCode") or ""
    tokens["tax_currency"] = _first(root, "cbc:TaxCurrencyCode") or ""
    tokens["number"] = _first(root, "cbc:ID") or ""
    with as_read():  # a document's amounts are judged by validation (BR-DEC), not refused
        kwargs = ENGINE.read_group(root, Invoice, BINDINGS, None, tokens)
        return build_invoice(kwargs)



def write_ubl(invoice: Invoice, *, document: UblDocument | None = None) -> etree._ElementTree:
    """Write the model as a UBL 2.1 document (schema-ordered).

    `document` picks Invoice or CreditNote; by default a credit note type code (381, ...) makes
    a CreditNote. A VAT breakdown without BT-110 gets its implied BT-110 (the sum of BT-117,
    BR-CO-14), since UBL's cac:TaxTotal requires it (see facturflow.model.implied).
    """
    invoice = with_implied_vat_total(invoice)
    if document is None:
        document = "creditnote" if invoice.type_code in CREDIT_NOTE_TYPES else "invoice"
    namespace, local = (NS_CREDITNOTE, "CreditNote") if document == "creditnote" else (
        NS_INVOICE, "Invoice")
    # The stubs do not allow the None key of a default namespace.
    nsmap: Any = {None: namespace, **NS}
    root = etree.Element(f"{{{namespace}}}{local}", nsmap=nsmap)
    tokens = dict(DOCUMENT_TOKENS[document])
    tokens["currency"] = invoice.currency_code
    tokens["tax_currency"] = invoice.tax_currency_code or ""
    tokens["number"] = invoice.number
    ENGINE.write_group(root, invoice, BINDINGS, None, tokens)
    sort_tree(root, "ubl")
    return etree.ElementTree(root)
