"""The few invoice fields transmission needs (number, dates, amounts, buyer, seller), read
straight from the XML of a detected document, whatever its syntax."""

from __future__ import annotations

import re
from typing import Any

from ..detect import Document, detect_bytes
from ..errors import FacturflowError


def _first(tree: Any, *paths: str) -> str | None:
    for path in paths:
        found = tree.xpath(path)
        if found:
            value = found[0] if isinstance(found[0], str) else found[0].text
            if value and str(value).strip():
                return str(value).strip()
    return None


def _ln(*names: str) -> str:
    return "/".join(f"*[local-name()='{n}']" for n in names)


def _date(value: str | None) -> str | None:
    if not value:
        return None
    digits = value.replace("-", "")
    if re.fullmatch(r"\d{8}", digits):
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    return None


def read_invoice_fields(data: bytes, name: str) -> dict[str, Any] | None:
    """Number, dates, amounts, buyer and seller from a Factur-X PDF, CII or UBL; None if none."""
    try:
        document = detect_bytes(data, name=name)
    except FacturflowError:
        return None
    return document_fields(document)


def document_fields(document: Document) -> dict[str, Any]:
    """The same fields from an already detected document."""
    root = document.tree.getroot()
    if document.syntax in ("cii", "zugferd1"):
        buyer = "//" + _ln("BuyerTradeParty")
        seller = "//" + _ln("SellerTradeParty")
        summary = "//" + _ln("SpecifiedTradeSettlementHeaderMonetarySummation")
        fields = {
            "number": _first(root, "/*/" + _ln("ExchangedDocument", "ID"),
                             "/*/" + _ln("HeaderExchangedDocument", "ID")),
            "type_code": _first(root, "/*/" + _ln("ExchangedDocument", "TypeCode")),
            "issue_date": _date(_first(root, "/*/*/" + _ln("IssueDateTime", "DateTimeString"))),
            "due_date": _date(_first(root, "//" + _ln("DueDateDateTime", "DateTimeString"))),
            "currency": _first(root, "//" + _ln("InvoiceCurrencyCode")),
            "total": _first(root, summary + "/" + _ln("GrandTotalAmount")),
            "vat": _first(root, summary + "/" + _ln("TaxTotalAmount")),
            "buyer_name": _first(root, buyer + "/" + _ln("Name")),
            "buyer_siren": _first(root, buyer + "/" + _ln("SpecifiedLegalOrganization", "ID")),
            "buyer_vat": _first(root, buyer + "/" + _ln("SpecifiedTaxRegistration", "ID")),
            "buyer_address": _first(root, buyer + "/" + _ln("URIUniversalCommunication", "URIID")),
            "seller_name": _first(root, seller + "/" + _ln("Name")),
            "seller_siren": _first(root, seller + "/" + _ln("SpecifiedLegalOrganization", "ID")),
        }
    else:
        buyer = "/*/" + _ln("AccountingCustomerParty", "Party")
        seller = "/*/" + _ln("AccountingSupplierParty", "Party")
        fields = {
            "number": _first(root, "/*/" + _ln("ID")),
            "type_code": _first(root, "/*/" + _ln("InvoiceTypeCode"),
                                "/*/" + _ln("CreditNoteTypeCode")),
            "issue_date": _date(_first(root, "/*/" + _ln("IssueDate"))),
            "due_date": _date(_first(root, "/*/" + _ln("DueDate"),
                                     "/*/" + _ln("PaymentMeans", "PaymentDueDate"))),
            "currency": _first(root, "/*/" + _ln("DocumentCurrencyCode")),
            "total": _first(root, "/*/" + _ln("LegalMonetaryTotal", "TaxInclusiveAmount")),
            "vat": _first(root, "/*/" + _ln("TaxTotal", "TaxAmount")),
            "buyer_name": _first(root, buyer + "/" + _ln("PartyLegalEntity", "RegistrationName"),
                                 buyer + "/" + _ln("PartyName", "Name")),
            "buyer_siren": _first(root, buyer + "/" + _ln("PartyLegalEntity", "CompanyID")),
            "buyer_vat": _first(root, buyer + "/" + _ln("PartyTaxScheme", "CompanyID")),
            "buyer_address": _first(root, buyer + "/" + _ln("EndpointID")),
            "seller_name": _first(root, seller + "/" + _ln("PartyLegalEntity", "RegistrationName"),
                                  seller + "/" + _ln("PartyName", "Name")),
            "seller_siren": _first(root, seller + "/" + _ln("PartyLegalEntity", "CompanyID")),
        }
    fields["syntax"] = document.syntax
    fields["container"] = document.container
    return fields


__all__ = ["document_fields", "read_invoice_fields"]
