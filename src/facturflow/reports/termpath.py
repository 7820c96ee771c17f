"""A finding's location as a business-term path (`BG-25[3] / BT-131`) beside its XPath, for
readers who know the EN 16931 groups rather than the syntax: the elements of CII and UBL that
carry a business group are named by it, with the position of a repeated one.

Only the groups whose element says which group it is are mapped (an allowance or charge is
BG-20 or BG-21 by an indicator inside it, so it is left out); an XPath with none of them has no
business-term path.
"""

from __future__ import annotations

import re

# Element local name -> group, for the parents that decide (address, contact: by their party).
_GROUPS: dict[str, str] = {
    # CII
    "IncludedNote": "BG-1",
    "SellerTradeParty": "BG-4",
    "BuyerTradeParty": "BG-7",
    "PayeeTradeParty": "BG-10",
    "SellerTaxRepresentativeTradeParty": "BG-11",
    "ShipToTradeParty": "BG-13",
    "SpecifiedTradeSettlementPaymentMeans": "BG-16",
    "SpecifiedTradeSettlementHeaderMonetarySummation": "BG-22",
    "AdditionalReferencedDocument": "BG-24",
    "IncludedSupplyChainTradeLineItem": "BG-25",
    "SpecifiedTradeProduct": "BG-31",
    # UBL
    "AccountingSupplierParty": "BG-4",
    "AccountingCustomerParty": "BG-7",
    "PayeeParty": "BG-10",
    "TaxRepresentativeParty": "BG-11",
    "Delivery": "BG-13",
    "PaymentMeans": "BG-16",
    "LegalMonetaryTotal": "BG-22",
    "TaxSubtotal": "BG-23",
    "AdditionalDocumentReference": "BG-24",
    "InvoiceLine": "BG-25",
    "CreditNoteLine": "BG-25",
    "Item": "BG-31",
}
# A postal address or contact is the group of its party.
_BY_PARENT: dict[tuple[str, str], str] = {
    ("BG-4", "PostalTradeAddress"): "BG-5",
    ("BG-4", "PostalAddress"): "BG-5",
    ("BG-4", "DefinedTradeContact"): "BG-6",
    ("BG-4", "Contact"): "BG-6",
    ("BG-7", "PostalTradeAddress"): "BG-8",
    ("BG-7", "PostalAddress"): "BG-8",
    ("BG-7", "DefinedTradeContact"): "BG-9",
    ("BG-7", "Contact"): "BG-9",
    ("BG-13", "PostalTradeAddress"): "BG-15",
    ("BG-13", "DeliveryLocation"): "BG-15",
}
_NAMESPACE_TEST = re.compile(r"\*:([\w.-]+)\[namespace-uri\(\)='[^']*'\]")
_EQNAME = re.compile(r"Q\{[^}]*\}")


def short_xpath(text: str) -> str:
    """An XPath as Schematron writes it, shortened for people: `/*:Name[namespace-uri()='urn:…'][1]`
    (the Factur-X and French stylesheets) and `/Q{urn:…}Name[1]` (SchXslt: Peppol, XRechnung)
    both become `/Name[1]`."""
    return _EQNAME.sub("", _NAMESPACE_TEST.sub(r"\1", text))


_STEP = re.compile(r"^(?:[\w.*-]+:)?([\w.-]+)((?:\[[^\]]*\])*)$")
_POSITION = re.compile(r"\[(\d+)\]")


def term_path(xpath: str | None, terms: tuple[str, ...] | list[str] = ()) -> str | None:
    """`BG-25[3] / BT-131` for a line's XPath and one term; None when no group is known."""
    if not xpath:
        return None
    groups: list[str] = []
    last: str | None = None
    for step in xpath.strip("/").split("/"):
        match = _STEP.match(step)
        if not match:
            continue
        name, predicates = match.groups()
        group = _GROUPS.get(name)
        if group is None and last is not None:
            group = _BY_PARENT.get((last, name))
        if group is None:
            continue
        position = _POSITION.search(predicates or "")
        repeated = group in ("BG-1", "BG-16", "BG-23", "BG-24", "BG-25")
        label = f"{group}[{position.group(1)}]" if repeated and position else group
        groups.append(label)
        last = group
    if not groups:
        return None
    bts = [term for term in terms if term.startswith("BT-")]
    parts = [*groups, bts[0]] if len(bts) == 1 else groups
    return " / ".join(parts)


def finding_term_path(xpath: str | None, terms: tuple[str, ...] | list[str] = ()) -> str | None:
    """`term_path` of a finding's location as the stylesheets write it (namespaces and all)."""
    return term_path(short_xpath(xpath), terms) if xpath else None
