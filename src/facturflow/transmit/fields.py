"""The few invoice fields transmission needs (number, dates, amounts, buyer, seller), read
straight from the XML of a detected document, whatever its syntax."""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from ..detection import Document, detect_bytes
from ..errors import FacturflowError

# A path is (depth, local names): depth 1 reads "/*/a/b", depth 2 "/*/*/a/b", and None
# "//a/b" (anywhere), all by local name in any namespace, like `*[local-name()='a']` steps.
_Path = tuple[int | None, tuple[str, ...]]


def _top(*names: str) -> _Path:
    return (1, names)


def _below_top(*names: str) -> _Path:
    return (2, names)


def _anywhere(*names: str) -> _Path:
    return (None, names)


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _first_node(root: Any, path: _Path) -> Any:
    """The first element in document order that `path` selects, or None.

    The XPath equivalents (`/*/a/b`, `//a/b`) compile and run a `local-name()` test on every
    node, once per field; lxml's `{*}` tag iteration runs in C and costs a tenth of that.
    """
    depth, names = path
    if depth is not None:
        # Fixed depth: a depth-first walk meets the matches in document order.
        level = [root]
        for _ in range(depth - 1):
            level = [c for n in level for c in n.iterchildren(tag=etree.Element)]
        for name in names:
            level = [c for n in level for c in n.iterchildren("{*}" + name)]
            if not level:
                return None
        return level[0]
    # Anywhere: walk the last step's elements in document order and check their ancestry.
    for element in root.iter("{*}" + names[-1]):
        node = element
        for name in reversed(names[:-1]):
            node = node.getparent()
            if node is None or _local(node.tag) != name:
                break
        else:
            return element
    return None


def _first(root: Any, *paths: _Path) -> str | None:
    """The stripped text of the first path whose first match has some text."""
    for path in paths:
        node = _first_node(root, path)
        if node is not None and node.text and node.text.strip():
            return str(node.text.strip())
    return None


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
        buyer = "BuyerTradeParty"
        seller = "SellerTradeParty"
        summary = "SpecifiedTradeSettlementHeaderMonetarySummation"
        fields = {
            "number": _first(root, _top("ExchangedDocument", "ID"),
                             _top("HeaderExchangedDocument", "ID")),
            "type_code": _first(root, _top("ExchangedDocument", "TypeCode")),
            "issue_date": _date(_first(root, _below_top("IssueDateTime", "DateTimeString"))),
            "due_date": _date(_first(root, _anywhere("DueDateDateTime", "DateTimeString"))),
            "currency": _first(root, _anywhere("InvoiceCurrencyCode")),
            "total": _first(root, _anywhere(summary, "GrandTotalAmount")),
            "vat": _first(root, _anywhere(summary, "TaxTotalAmount")),
            "buyer_name": _first(root, _anywhere(buyer, "Name")),
            "buyer_siren": _first(root, _anywhere(buyer, "SpecifiedLegalOrganization", "ID")),
            "buyer_vat": _first(root, _anywhere(buyer, "SpecifiedTaxRegistration", "ID")),
            "buyer_address": _first(root, _anywhere(buyer, "URIUniversalCommunication", "URIID")),
            "seller_name": _first(root, _anywhere(seller, "Name")),
            "seller_siren": _first(root, _anywhere(seller, "SpecifiedLegalOrganization", "ID")),
        }
    else:
        buyer_party = ("AccountingCustomerParty", "Party")
        seller_party = ("AccountingSupplierParty", "Party")
        fields = {
            "number": _first(root, _top("ID")),
            "type_code": _first(root, _top("InvoiceTypeCode"), _top("CreditNoteTypeCode")),
            "issue_date": _date(_first(root, _top("IssueDate"))),
            "due_date": _date(_first(root, _top("DueDate"),
                                     _top("PaymentMeans", "PaymentDueDate"))),
            "currency": _first(root, _top("DocumentCurrencyCode")),
            "total": _first(root, _top("LegalMonetaryTotal", "TaxInclusiveAmount")),
            "vat": _first(root, _top("TaxTotal", "TaxAmount")),
            "buyer_name": _first(root, _top(*buyer_party, "PartyLegalEntity", "RegistrationName"),
                                 _top(*buyer_party, "PartyName", "Name")),
            "buyer_siren": _first(root, _top(*buyer_party, "PartyLegalEntity", "CompanyID")),
            "buyer_vat": _first(root, _top(*buyer_party, "PartyTaxScheme", "CompanyID")),
            "buyer_address": _first(root, _top(*buyer_party, "EndpointID")),
            "seller_name": _first(root, _top(*seller_party, "PartyLegalEntity", "RegistrationName"),
                                  _top(*seller_party, "PartyName", "Name")),
            "seller_siren": _first(root, _top(*seller_party, "PartyLegalEntity", "CompanyID")),
        }
    fields["syntax"] = document.syntax
    fields["container"] = document.container
    return fields


__all__ = ["document_fields", "read_invoice_fields"]
