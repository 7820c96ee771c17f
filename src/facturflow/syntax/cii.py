"""CII (UN/CEFACT Cross Industry Invoice D16B, as Factur-X uses it) <-> the EN 16931 model.

The table `BINDINGS` follows CEN/TS 16931-3-3: one row per business term, used for both
`read_cii` and `write_cii`. Terms whose CII shape is not one path per term (payment means, which
CII repeats per account; BT-7/BT-8, which CII puts in the first VAT breakdown; BT-110/BT-111, told
apart by currency) have a small custom reader/writer pair declared in the same row.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ..model.codelists import as_read
from ..model.implied import with_implied_gross_prices, without_redundant_tax_currency
from ..model.invoice import (
    AllowanceCharge,
    CreditTransfer,
    DirectDebit,
    Invoice,
    PaymentCard,
    PaymentInstructions,
    PostalAddress,
    business_term,
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

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
ENGINE = Engine(NS, "cii")

T = "rsm:SupplyChainTradeTransaction"
A = f"{T}/ram:ApplicableHeaderTradeAgreement"
D = f"{T}/ram:ApplicableHeaderTradeDelivery"
S = f"{T}/ram:ApplicableHeaderTradeSettlement"
VAT_TAX = (("ram:TypeCode", "VAT"),)
ALLOWANCE = "ram:SpecifiedTradeAllowanceCharge[ram:ChargeIndicator/udt:Indicator='false']"
CHARGE = "ram:SpecifiedTradeAllowanceCharge[ram:ChargeIndicator/udt:Indicator='true']"
# xs:boolean also spells false and true as 0 and 1: reading accepts both, writing uses words.
ALLOWANCE_READ = ("ram:SpecifiedTradeAllowanceCharge[normalize-space(ram:ChargeIndicator/"
                  "udt:Indicator)='false'"
                  " or normalize-space(ram:ChargeIndicator/udt:Indicator)='0']")
CHARGE_READ = ("ram:SpecifiedTradeAllowanceCharge[normalize-space(ram:ChargeIndicator/"
               "udt:Indicator)='true' or normalize-space(ram:ChargeIndicator/udt:Indicator)='1']")
# BT-8: the model holds UNTDID 2005 (3, 35, 432); CII uses UNTDID 2475 (5, 29, 72).
VAT_DATE_CODES = (("5", "3"), ("29", "35"), ("72", "432"))


def _party_id(term: str, party: str = ".") -> Bind:
    """A party identifier: ram:ID without a scheme, ram:GlobalID with one (BT-29, -46, -60, -71)."""
    return B(term, f"{party}/ram:ID", custom=(
        lambda el, tokens: _read_party_ids(el, term, party),
        lambda el, value, tokens: _write_party_ids(ENGINE._walk(el, party, reuse_last=True),
                                                   value),
    ))


def _read_party_ids(element: etree._Element, term: str, party: str) -> Any:
    from ..model.invoice import Identifier

    found = element.xpath(f"{party}/ram:ID | {party}/ram:GlobalID", namespaces=NS)
    assert isinstance(found, list)
    values = []
    for node in found:
        assert isinstance(node, etree._Element)
        text = (node.text or "").strip()
        if text:
            values.append(Identifier(value=text, scheme=node.get("schemeID") or None))
    if term == "BT-29":
        return tuple(values)
    return values[0] if values else None


def _write_party_ids(element: etree._Element, value: Any) -> None:
    for ident in value if isinstance(value, tuple) else (value,):
        tag = "GlobalID" if ident.scheme else "ID"
        child = etree.SubElement(element, f"{{{NS['ram']}}}{tag}")
        child.text = ident.value
        if ident.scheme:
            child.set("schemeID", ident.scheme)


# PostalAddress fields in the order of CII's schema.
_ADDRESS = {"post_code": "ram:PostcodeCode", "line1": "ram:LineOne", "line2": "ram:LineTwo",
            "line3": "ram:LineThree", "city": "ram:CityName", "country_code": "ram:CountryID",
            "country_subdivision": "ram:CountrySubDivisionName"}


def _address(term: str) -> Bind:
    return G(term, "ram:PostalTradeAddress", *model_rows(PostalAddress, term, _ADDRESS))


def _contact(term: str, point: str, phone: str, email: str) -> Bind:
    return G(
        term, "ram:DefinedTradeContact",
        B(point, "ram:PersonName", read="ram:PersonName | ram:DepartmentName"),
        B(phone, "ram:TelephoneUniversalCommunication/ram:CompleteNumber"),
        B(email, "ram:EmailURIUniversalCommunication/ram:URIID"),
    )


def _vat_id(term: str, scheme: str = "VA") -> Bind:
    return B(term, f"ram:SpecifiedTaxRegistration[ram:ID/@schemeID='{scheme}']/ram:ID")


def _allowances(term: str, path: str, document: bool, read: str | None = None) -> Bind:
    def bt(name: str) -> str:  # the model holds each group's term ids
        return business_term(AllowanceCharge, name, term)

    # The read-only alternatives are those of an EXTENDED logistics service charge
    # (ram:SpecifiedLogisticsServiceCharge, BT-X-272), which Factur-X counts in BT-108.
    rows = [
        B(bt("amount"), "ram:ActualAmount", read="ram:ActualAmount | ram:AppliedAmount"),
        B(bt("base_amount"), "ram:BasisAmount"),
        B(bt("percentage"), "ram:CalculationPercent"),
        B(bt("reason"), "ram:Reason", read="ram:Reason | ram:Description"),
        B(bt("reason_code"), "ram:ReasonCode"),
    ]
    if document:
        rows += [
            B(bt("vat_category_code"), "ram:CategoryTradeTax/ram:CategoryCode",
              read="ram:CategoryTradeTax/ram:CategoryCode | ram:AppliedTradeTax/ram:CategoryCode",
              fill=(("ram:CategoryTradeTax/ram:TypeCode", "VAT"),)),
            B(bt("vat_rate"), "ram:CategoryTradeTax/ram:RateApplicablePercent",
              read="ram:CategoryTradeTax/ram:RateApplicablePercent"
                   " | ram:AppliedTradeTax/ram:RateApplicablePercent"),
        ]
    return G(term, path, *rows, read=read)


ITEM_SELLER = "ram:SpecifiedLineTradeAgreement/ram:ItemSellerTradeParty"
LINE_TOTALS = "ram:SpecifiedLineTradeSettlement/ram:SpecifiedTradeSettlementLineMonetarySummation"

LINE = G(
    "BG-25", f"{T}/ram:IncludedSupplyChainTradeLineItem",
    B("BT-126", "ram:AssociatedDocumentLineDocument/ram:LineID"),
    B("EXT-FR-FE-162", "ram:AssociatedDocumentLineDocument/ram:ParentLineID"),
    B("EXT-FR-FE-163", "ram:AssociatedDocumentLineDocument/ram:LineStatusReasonCode"),
    B("BT-127", "ram:AssociatedDocumentLineDocument/ram:IncludedNote/ram:Content"),
    G("BG-31", "ram:SpecifiedTradeProduct",
      B("BT-157", "ram:GlobalID"),
      B("BT-155", "ram:SellerAssignedID"),
      B("BT-156", "ram:BuyerAssignedID"),
      B("BT-153", "ram:Name"),
      B("BT-154", "ram:Description"),
      G("BG-32", "ram:ApplicableProductCharacteristic",
        B("BT-160", "ram:Description"),
        B("BT-161", "ram:Value")),
      B("BT-158", "ram:DesignatedProductClassification", parts=(
          ("value", "ram:ClassCode"), ("scheme", "ram:ClassCode/@listID"),
          ("version", "ram:ClassCode/@listVersionID"))),
      B("BT-159", "ram:OriginTradeCountry/ram:ID")),
    B("BT-132", "ram:SpecifiedLineTradeAgreement/ram:BuyerOrderReferencedDocument/ram:LineID"),
    G("BG-29", "ram:SpecifiedLineTradeAgreement",
      B("BT-148", "ram:GrossPriceProductTradePrice/ram:ChargeAmount"),
      B("BT-147", "ram:GrossPriceProductTradePrice/ram:AppliedTradeAllowanceCharge"
                  "[ram:ChargeIndicator/udt:Indicator='false']/ram:ActualAmount"),
      B("BT-146", "ram:NetPriceProductTradePrice/ram:ChargeAmount"),
      B("BT-149", "ram:NetPriceProductTradePrice/ram:BasisQuantity"),
      B("BT-150", "ram:NetPriceProductTradePrice/ram:BasisQuantity/@unitCode")),
    B("BT-129", "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity"),
    B("BT-130", "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity/@unitCode"),
    G("BG-30", "ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax",
      B("BT-151", "ram:CategoryCode"),
      B("BT-152", "ram:RateApplicablePercent"),
      fill=VAT_TAX),
    G("BG-26", "ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod",
      B("BT-134", "ram:StartDateTime"),
      B("BT-135", "ram:EndDateTime")),
    _allowances("BG-27", f"ram:SpecifiedLineTradeSettlement/{ALLOWANCE}", False,
                read=f"ram:SpecifiedLineTradeSettlement/{ALLOWANCE_READ}"),
    _allowances("BG-28", f"ram:SpecifiedLineTradeSettlement/{CHARGE}", False,
                read=f"ram:SpecifiedLineTradeSettlement/{CHARGE_READ}"),
    B("BT-131", "ram:SpecifiedLineTradeSettlement"
                "/ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount"),
    B("BT-128", "ram:SpecifiedLineTradeSettlement/ram:AdditionalReferencedDocument"
                "[ram:TypeCode='130']",
      parts=(("value", "ram:IssuerAssignedID"), ("scheme", "ram:ReferenceTypeCode"))),
    B("BT-133", "ram:SpecifiedLineTradeSettlement"
                "/ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"),
    # EXTENDED-CTC-FR multi-vendor lines: the line seller (ram:ItemSellerTradeParty) and the
    # line's VAT figures, as the AFNOR XP Z12-012 examples place them.
    B("EXT-FR-FE-164", f"{ITEM_SELLER}/ram:Name"),
    B("EXT-FR-FE-166", f"{ITEM_SELLER}/ram:GlobalID"),
    B("EXT-FR-FE-167", f"{ITEM_SELLER}/ram:SpecifiedLegalOrganization/ram:ID"),
    B("EXT-FR-FE-168", f"{ITEM_SELLER}/ram:SpecifiedTaxRegistration[ram:ID/@schemeID='VA']"
                       "/ram:ID"),
    B("EXT-FR-FE-177", f"{ITEM_SELLER}/ram:PostalTradeAddress/ram:CountryID"),
    B("EXT-FR-FE-178", "ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax"
                       "/ram:ExemptionReason"),
    B("EXT-FR-FE-180", "ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax"
                       "/ram:DueDateTypeCode", codes=VAT_DATE_CODES),
    B("EXT-FR-FE-181", f"{LINE_TOTALS}/ram:TaxTotalAmount",
      read=f"{LINE_TOTALS}/ram:TaxTotalAmount[not(@currencyID) or @currencyID='{{currency}}']",
      fill=((f"{LINE_TOTALS}/ram:TaxTotalAmount/@currencyID", "{currency}"),)),
)


# -- custom rows ---------------------------------------------------------------------------


def _read_payment(element: etree._Element, tokens: Tokens) -> PaymentInstructions | None:
    found = element.xpath(S, namespaces=NS)
    assert isinstance(found, list)
    if not found or not isinstance(found[0], etree._Element):
        return None
    settlement = found[0]

    def text(node: etree._Element, path: str, verbatim: bool = False) -> str | None:
        return first_text(node, path, NS, verbatim=verbatim)

    means = settlement.xpath("ram:SpecifiedTradeSettlementPaymentMeans", namespaces=NS)
    assert isinstance(means, list)
    code = info = None
    transfers: list[CreditTransfer] = []
    card: PaymentCard | None = None
    debited: str | None = None
    for item in means:
        assert isinstance(item, etree._Element)
        code = code or text(item, "ram:TypeCode")
        info = info or text(item, "ram:Information", True)
        account = item.find("ram:PayeePartyCreditorFinancialAccount", namespaces=NS)
        if account is not None:
            transfer = CreditTransfer(
                account_id=text(account, "ram:IBANID") or text(account, "ram:ProprietaryID"),
                account_name=text(account, "ram:AccountName", True),
                service_provider_id=text(item, "ram:PayeeSpecifiedCreditorFinancialInstitution"
                                               "/ram:BICID"),
            )
            if transfer != CreditTransfer():
                transfers.append(transfer)
        pan = text(item, "ram:ApplicableTradeSettlementFinancialCard/ram:ID")
        if pan and card is None:
            card = PaymentCard(primary_account_number=pan, holder_name=text(
                item, "ram:ApplicableTradeSettlementFinancialCard/ram:CardholderName", True))
        debited = debited or text(item, "ram:PayerPartyDebtorFinancialAccount/ram:IBANID")
    mandate = text(settlement, "ram:SpecifiedTradePaymentTerms/ram:DirectDebitMandateID")
    creditor = text(settlement, "ram:CreditorReferenceID")
    debit = DirectDebit(mandate_reference=mandate, creditor_id=creditor,
                        debited_account_id=debited)
    result = PaymentInstructions(
        means_code=code, means_text=info,
        remittance_information=text(settlement, "ram:PaymentReference", True),
        credit_transfers=tuple(transfers), card=card,
        direct_debit=None if debit == DirectDebit() else debit,
    )
    return None if result == PaymentInstructions() else result


def _write_payment(element: etree._Element, value: PaymentInstructions, tokens: Tokens) -> None:
    walk = ENGINE._walk  # the engine's find-or-create, so paths read as in the table

    def put(node: etree._Element, path: str, text: str | None, reuse: bool = True) -> None:
        if text is not None:
            ENGINE._set(walk(node, path, reuse_last=reuse), text)

    put(element, f"{S}/ram:PaymentReference", value.remittance_information)
    debit = value.direct_debit
    if debit:
        put(element, f"{S}/ram:CreditorReferenceID", debit.creditor_id)
        put(element, f"{S}/ram:SpecifiedTradePaymentTerms/ram:DirectDebitMandateID",
            debit.mandate_reference)
    # One SpecifiedTradeSettlementPaymentMeans per credit transfer account (CII allows one
    # account per means); the card and the debited account ride on the first one.
    count = max(1, len(value.credit_transfers))
    if value.means_code is None and not value.credit_transfers and not value.card and not (
        debit and debit.debited_account_id
    ) and value.means_text is None:
        return
    settlement = walk(element, S, reuse_last=True)
    for index in range(count):
        means = etree.SubElement(settlement,
                                 f"{{{NS['ram']}}}SpecifiedTradeSettlementPaymentMeans")
        put(means, "ram:TypeCode", value.means_code)
        if index == 0:
            put(means, "ram:Information", value.means_text)
            if value.card:
                put(means, "ram:ApplicableTradeSettlementFinancialCard/ram:ID",
                    value.card.primary_account_number)
                put(means, "ram:ApplicableTradeSettlementFinancialCard/ram:CardholderName",
                    value.card.holder_name)
            if debit:
                put(means, "ram:PayerPartyDebtorFinancialAccount/ram:IBANID",
                    debit.debited_account_id)
        if value.credit_transfers:
            transfer = value.credit_transfers[index]
            if transfer.account_id is not None or transfer.account_name is not None:
                account = walk(means, "ram:PayeePartyCreditorFinancialAccount", reuse_last=True)
                put(account, "ram:IBANID", transfer.account_id)
                put(account, "ram:AccountName", transfer.account_name)
            put(means, "ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID",
                transfer.service_provider_id)


def _read_tax_total(term: str) -> Any:
    def read(element: etree._Element, tokens: Tokens) -> Any:
        # `element` is the BG-22 monetary summation.
        found = element.xpath("ram:TaxTotalAmount", namespaces=NS)
        assert isinstance(found, list)
        currency = tokens.get("tax_currency" if term == "BT-111" else "currency")
        candidates = [n for n in found if isinstance(n, etree._Element)
                      and (n.get("currencyID") in (None, currency))]
        if term == "BT-111":
            if not tokens.get("tax_currency"):
                return None
            if tokens["tax_currency"] == tokens.get("currency") and len(candidates) > 1:
                # BT-6 = BT-5: the second total is BT-111; a single one states both.
                candidates = candidates[1:]
        if not candidates or not (candidates[0].text or "").strip():
            return None
        return parse_decimal(term, (candidates[0].text or "").strip())

    return read


def _write_tax_total(term: str) -> Any:
    # A BT-111 equal to BT-110 with BT-6 = BT-5 never gets here: write_cii leaves it out
    # (facturflow.model.implied.without_redundant_tax_currency).
    def write(element: etree._Element, value: Any, tokens: Tokens) -> None:
        node = etree.SubElement(element, f"{{{NS['ram']}}}TaxTotalAmount")
        node.text = format(value, "f")
        node.set("currencyID", tokens["tax_currency" if term == "BT-111" else "currency"])

    return write


def _read_tax_point(term: str) -> Any:
    def read(element: etree._Element, tokens: Tokens) -> Any:
        rows = (B("BT-7", f"{S}/ram:ApplicableTradeTax/ram:TaxPointDate") if term == "BT-7" else
                B("BT-8", f"{S}/ram:ApplicableTradeTax/ram:DueDateTypeCode",
                  codes=VAT_DATE_CODES))
        return ENGINE.read_group(element, Invoice, (rows,), None, tokens).get(
            "tax_point_date" if term == "BT-7" else "tax_point_date_code")

    return read


def _write_tax_point(term: str) -> Any:
    def write(element: etree._Element, value: Any, tokens: Tokens) -> None:
        # CII has a slot for BT-7/BT-8 in every header VAT breakdown, but the document has one
        # of each: CEN's CII-SR-461 allows one ram:TaxPointDate in the whole settlement (and
        # CII-SR-462 one distinct ram:DueDateTypeCode), so both go in the first breakdown only,
        # as the CEN and KoSIT examples carry them. They are written after the breakdowns.
        taxes = element.xpath(f"{S}/ram:ApplicableTradeTax", namespaces=NS)
        assert isinstance(taxes, list)
        for tax in taxes[:1]:
            assert isinstance(tax, etree._Element)
            if term == "BT-7":
                node = etree.SubElement(tax, f"{{{NS['ram']}}}TaxPointDate")
                inner = etree.SubElement(node, f"{{{NS['udt']}}}DateString", format="102")
                inner.text = value.strftime("%Y%m%d")
            else:
                node = etree.SubElement(tax, f"{{{NS['ram']}}}DueDateTypeCode")
                node.text = dict((m, d) for d, m in VAT_DATE_CODES).get(value, value)

    return write


def _read_tax_point_date(element: etree._Element, tokens: Tokens) -> Any:
    from datetime import date

    found = element.xpath(f"{S}/ram:ApplicableTradeTax/ram:TaxPointDate/udt:DateString",
                          namespaces=NS)
    assert isinstance(found, list)
    for node in found:
        assert isinstance(node, etree._Element)
        text = (node.text or "").strip()
        if len(text) == 8 and text.isdigit():
            return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    return None


BINDINGS: tuple[Bind, ...] = (
    B("BT-23", "rsm:ExchangedDocumentContext/ram:BusinessProcessSpecifiedDocumentContextParameter"
               "/ram:ID"),
    B("BT-24", "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter"
               "/ram:ID"),
    B("BT-1", "rsm:ExchangedDocument/ram:ID"),
    B("BT-3", "rsm:ExchangedDocument/ram:TypeCode"),
    B("BT-2", "rsm:ExchangedDocument/ram:IssueDateTime"),
    G("BG-1", "rsm:ExchangedDocument/ram:IncludedNote",
      B("BT-22", "ram:Content"),
      B("BT-21", "ram:SubjectCode")),
    LINE,
    B("BT-10", f"{A}/ram:BuyerReference"),
    G("BG-4", f"{A}/ram:SellerTradeParty",
      _party_id("BT-29"),
      B("BT-27", "ram:Name"),
      B("BT-33", "ram:Description"),
      B("BT-30", "ram:SpecifiedLegalOrganization/ram:ID"),
      B("BT-28", "ram:SpecifiedLegalOrganization/ram:TradingBusinessName"),
      _contact("BG-6", "BT-41", "BT-42", "BT-43"),
      _address("BG-5"),
      B("BT-34", "ram:URIUniversalCommunication/ram:URIID"),
      _vat_id("BT-31"),
      _vat_id("BT-32", "FC")),
    G("BG-7", f"{A}/ram:BuyerTradeParty",
      _party_id("BT-46"),
      B("BT-44", "ram:Name"),
      B("BT-47", "ram:SpecifiedLegalOrganization/ram:ID"),
      B("BT-45", "ram:SpecifiedLegalOrganization/ram:TradingBusinessName"),
      _contact("BG-9", "BT-56", "BT-57", "BT-58"),
      _address("BG-8"),
      B("BT-49", "ram:URIUniversalCommunication/ram:URIID"),
      _vat_id("BT-48")),
    G("BG-11", f"{A}/ram:SellerTaxRepresentativeTradeParty",
      B("BT-62", "ram:Name"),
      _address("BG-12"),
      _vat_id("BT-63")),
    B("BT-14", f"{A}/ram:SellerOrderReferencedDocument/ram:IssuerAssignedID"),
    B("BT-13", f"{A}/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"),
    B("BT-12", f"{A}/ram:ContractReferencedDocument/ram:IssuerAssignedID"),
    G("BG-24", f"{A}/ram:AdditionalReferencedDocument[ram:TypeCode='916']",
      B("BT-122", "ram:IssuerAssignedID"),
      B("BT-124", "ram:URIID"),
      B("BT-123", "ram:Name"),
      B("BT-125", "ram:AttachmentBinaryObject")),
    B("BT-17", f"{A}/ram:AdditionalReferencedDocument[ram:TypeCode='50']/ram:IssuerAssignedID"),
    B("BT-18", f"{A}/ram:AdditionalReferencedDocument[ram:TypeCode='130']",
      parts=(("value", "ram:IssuerAssignedID"), ("scheme", "ram:ReferenceTypeCode"))),
    B("BT-11", f"{A}/ram:SpecifiedProcuringProject/ram:ID",
      fill=((f"{A}/ram:SpecifiedProcuringProject/ram:Name", "Project reference"),)),
    G("BG-13", D,
      _party_id("BT-71", "ram:ShipToTradeParty"),
      B("BT-70", "ram:ShipToTradeParty/ram:Name"),
      G("BG-15", "ram:ShipToTradeParty/ram:PostalTradeAddress", *_address("BG-15").children),
      B("BT-72", "ram:ActualDeliverySupplyChainEvent/ram:OccurrenceDateTime")),
    B("BT-16", f"{D}/ram:DespatchAdviceReferencedDocument/ram:IssuerAssignedID"),
    B("BT-15", f"{D}/ram:ReceivingAdviceReferencedDocument/ram:IssuerAssignedID"),
    B("BT-5", f"{S}/ram:InvoiceCurrencyCode"),
    B("BT-6", f"{S}/ram:TaxCurrencyCode"),
    G("BG-10", f"{S}/ram:PayeeTradeParty",
      _party_id("BT-60"),
      B("BT-59", "ram:Name"),
      B("BT-61", "ram:SpecifiedLegalOrganization/ram:ID")),
    B("BG-16", S, custom=(_read_payment, _write_payment)),
    G("BG-23", f"{S}/ram:ApplicableTradeTax",
      B("BT-117", "ram:CalculatedAmount"),
      B("BT-120", "ram:ExemptionReason"),
      B("BT-116", "ram:BasisAmount"),
      B("BT-118", "ram:CategoryCode"),
      B("BT-121", "ram:ExemptionReasonCode"),
      B("BT-119", "ram:RateApplicablePercent"),
      fill=VAT_TAX),
    B("BT-7", S, custom=(_read_tax_point_date, _write_tax_point("BT-7"))),
    B("BT-8", S, custom=(_read_tax_point("BT-8"), _write_tax_point("BT-8"))),
    G("BG-14", f"{S}/ram:BillingSpecifiedPeriod",
      B("BT-73", "ram:StartDateTime"),
      B("BT-74", "ram:EndDateTime")),
    _allowances("BG-20", f"{S}/{ALLOWANCE}", True, read=f"{S}/{ALLOWANCE_READ}"),
    # EXTENDED logistics service charges are document level charges: read as BG-21, written
    # as plain charges (the sum BT-108 stays right in every syntax).
    _allowances("BG-21", f"{S}/{CHARGE}", True,
                read=f"{S}/{CHARGE_READ} | {S}/ram:SpecifiedLogisticsServiceCharge"),
    B("BT-20", f"{S}/ram:SpecifiedTradePaymentTerms/ram:Description"),
    B("BT-9", f"{S}/ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime"),
    G("BG-22", f"{S}/ram:SpecifiedTradeSettlementHeaderMonetarySummation",
      B("BT-106", "ram:LineTotalAmount"),
      B("BT-108", "ram:ChargeTotalAmount"),
      B("BT-107", "ram:AllowanceTotalAmount"),
      B("BT-109", "ram:TaxBasisTotalAmount"),
      B("BT-110", ".", custom=(_read_tax_total("BT-110"), _write_tax_total("BT-110"))),
      B("BT-111", ".", custom=(_read_tax_total("BT-111"), _write_tax_total("BT-111"))),
      B("BT-114", "ram:RoundingAmount"),
      B("BT-112", "ram:GrandTotalAmount"),
      B("BT-113", "ram:TotalPrepaidAmount"),
      B("BT-115", "ram:DuePayableAmount")),
    B("BT-19", f"{S}/ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"),
    G("BG-3", f"{S}/ram:InvoiceReferencedDocument",
      B("BT-25", "ram:IssuerAssignedID"),
      B("BT-26", "ram:FormattedIssueDateTime", date_ns="qdt")),
)

# Elements CII requires even when empty.
SKELETON = (
    "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter",
    "rsm:ExchangedDocument",
    A,
    D,
    S,
)


def read_cii(tree: etree._ElementTree | etree._Element) -> Invoice:
    """Read a CII CrossIndustryInvoice (any Factur-X profile) into the model.

    Raises BindingError (a ValueError naming the business term) on a value the model refuses.
    """
    root = tree.getroot() if isinstance(tree, etree._ElementTree) else tree
    tokens = {
        "currency": _first_text(root, f"{S}/ram:InvoiceCurrencyCode") or "",
        "tax_currency": _first_text(root, f"{S}/ram:TaxCurrencyCode") or "",
    }
    with as_read():  # a document's amounts are judged by validation (BR-DEC), not refused
        kwargs = ENGINE.read_group(root, Invoice, BINDINGS, None, tokens)
        return build_invoice(kwargs)



def _first_text(root: etree._Element, path: str) -> str | None:
    return first_text(root, path, NS)


def write_cii(invoice: Invoice) -> etree._ElementTree:
    """Write the model as a CII CrossIndustryInvoice tree (schema-ordered).

    Two terms follow CII's shape (see facturflow.model.implied): a price discount (BT-147)
    without gross price gets its implied gross price BT-148 = BT-146 + BT-147, which
    ram:GrossPriceProductTradePrice requires; a VAT accounting currency (BT-6) equal to the
    invoice currency, which the CII rules refuse (BR-53), is left out with its BT-111 (= BT-110).
    """
    invoice = without_redundant_tax_currency(with_implied_gross_prices(invoice))
    root = etree.Element(f"{{{NS['rsm']}}}CrossIndustryInvoice", nsmap=NS)
    for path in SKELETON:
        ENGINE._walk(root, path, reuse_last=True)
    tokens = {"currency": invoice.currency_code, "tax_currency": invoice.tax_currency_code or ""}
    ENGINE.write_group(root, invoice, BINDINGS, None, tokens)
    sort_tree(root, "cii")
    return etree.ElementTree(root)
