"""ZUGFeRD 1.0 (rsm:CrossIndustryDocument, CII D13B-based) -> the EN 16931 model.

Why a transform and not a third binding table: ZUGFeRD 1.0 BASIC, COMFORT and EXTENDED are the
ancestors of the CII D16B that Factur-X uses, and for every term EN 16931 has, the two differ only
in names (namespaces, `SpecifiedSupplyChainTradeAgreement` -> `SpecifiedLineTradeAgreement`,
`ApplicablePercent` -> `RateApplicablePercent`, ...) and in one structure (ZUGFeRD 1.0's
`SpecifiedLogisticsServiceCharge`, a document level charge, becomes a CII
`SpecifiedTradeAllowanceCharge` with its charge indicator). So `to_cii()` rewrites the tree into
CII D16B and the CII binding reads it: one table per business term stays the only place a term
is mapped, as the Mustang project does with its ZUGFeRD 1 -> 2 stylesheet.

What EN 16931 cannot hold (the invoicee, ship-from party, product characteristics' type codes,
package quantities, per-tax line total basis amounts, German bank codes...) is reported rather
than lost silently: `read_zugferd1` returns, with the invoice, the ZUGFeRD 1.0 elements (as
paths) whose content did not reach the model; a round trip through the CII writer tells them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from lxml import etree

from ..model.invoice import Invoice
from .cii import NS as CII_NS
from .cii import read_cii, write_cii

NS_RSM = "urn:ferd:CrossIndustryDocument:invoice:1p0"
NS_RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12"
NS_UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:15"
NAMESPACES = {NS_RSM: CII_NS["rsm"], NS_RAM: CII_NS["ram"], NS_UDT: CII_NS["udt"]}

# ZUGFeRD 1.0 element name -> CII D16B name, whatever the parent (the names are unambiguous).
RENAMED = {
    "CrossIndustryDocument": "CrossIndustryInvoice",
    "SpecifiedExchangedDocumentContext": "ExchangedDocumentContext",
    "HeaderExchangedDocument": "ExchangedDocument",
    "SpecifiedSupplyChainTradeTransaction": "SupplyChainTradeTransaction",
    "ApplicableSupplyChainTradeAgreement": "ApplicableHeaderTradeAgreement",
    "ApplicableSupplyChainTradeDelivery": "ApplicableHeaderTradeDelivery",
    "ApplicableSupplyChainTradeSettlement": "ApplicableHeaderTradeSettlement",
    "SpecifiedSupplyChainTradeAgreement": "SpecifiedLineTradeAgreement",
    "SpecifiedSupplyChainTradeDelivery": "SpecifiedLineTradeDelivery",
    "SpecifiedSupplyChainTradeSettlement": "SpecifiedLineTradeSettlement",
    "ApplicablePercent": "RateApplicablePercent",
}
# Elements that are about the message, not the invoice: not business terms, never reported.
NOT_TERMS = frozenset({
    "ExchangedDocumentContext/TestIndicator/Indicator",
    "ExchangedDocument/Name",
})


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def to_cii(
    tree: etree._ElementTree | etree._Element,
    assumed: list[str] | None = None,
    dropped: list[str] | None = None,
) -> etree._Element:
    """A CII D16B CrossIndustryInvoice with the content of a ZUGFeRD 1.0 document.

    Terms EN 16931 requires that ZUGFeRD 1.0 BASIC may leave out are completed as Mustang does,
    each noted in `assumed`: line ids (BT-126) numbered 1, 2, ...; the invoice currency (BT-5)
    from the amounts' currencyID; a VAT category code (BT-118, BT-151, ...) S for a rate above
    0, else Z; a text line (a note without product, quantity or amount, which EN 16931 has no
    line for) becomes an invoice note (BG-1). Dates EN 16931 cannot state (a year and week,
    format 616; a year and month, 610) are left out and noted in `dropped`.
    """
    notes: list[str] = [] if assumed is None else assumed
    lost: list[str] = [] if dropped is None else dropped
    root = tree.getroot() if isinstance(tree, etree._ElementTree) else tree
    root = copy.deepcopy(root)
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element)
        namespace = NAMESPACES.get(name.namespace or "", name.namespace)
        local = RENAMED.get(name.localname, name.localname)
        if name.localname == "SpecifiedTradeSettlementMonetarySummation":
            parent = element.getparent()
            in_line = parent is not None and etree.QName(parent).localname in (
                "SpecifiedSupplyChainTradeSettlement", "SpecifiedLineTradeSettlement"
            )
            local = ("SpecifiedTradeSettlementLineMonetarySummation" if in_line
                     else "SpecifiedTradeSettlementHeaderMonetarySummation")
        element.tag = _q(namespace or "", local)
    ram, udt = CII_NS["ram"], CII_NS["udt"]
    # A logistics service charge is a document level charge (BG-21).
    for service in root.iter(_q(ram, "SpecifiedLogisticsServiceCharge")):
        service.tag = _q(ram, "SpecifiedTradeAllowanceCharge")
        indicator = etree.Element(_q(ram, "ChargeIndicator"))
        etree.SubElement(indicator, _q(udt, "Indicator")).text = "true"
        service.insert(0, indicator)
        for child in service:
            local = etree.QName(child).localname
            if local == "AppliedAmount":
                child.tag = _q(ram, "ActualAmount")
            elif local == "Description":
                child.tag = _q(ram, "Reason")
            elif local == "AppliedTradeTax":
                child.tag = _q(ram, "CategoryTradeTax")
    _dates(root, lost)
    _text_lines(root, notes)
    _complete(root, notes)
    etree.cleanup_namespaces(root, top_nsmap={"rsm": CII_NS["rsm"], "ram": ram, "udt": udt})
    return root


def _path(element: etree._Element) -> str:
    steps = []
    node: etree._Element | None = element
    while node is not None and node.getparent() is not None:
        steps.append(etree.QName(node).localname)
        node = node.getparent()
    return "/".join(reversed(steps))


def _dates(root: etree._Element, lost: list[str]) -> None:
    """Leave out the dates that are not a day (UNTDID 2379 format 102)."""
    for string in list(root.iter(_q(CII_NS["udt"], "DateTimeString"))):
        date_format = string.get("format", "102")
        if date_format == "102":
            continue
        holder = string.getparent()
        if holder is None:
            continue
        lost.append(f"{_path(holder)} (format {date_format} {(string.text or '').strip()!r}: "
                    "not a day)")
        parent = holder.getparent()
        if parent is not None:
            parent.remove(holder)
            if len(parent) == 0 and not (parent.text or "").strip():
                grand = parent.getparent()
                if grand is not None:
                    grand.remove(parent)


def _text_lines(root: etree._Element, notes: list[str]) -> None:
    """Lines with nothing but a note become invoice notes (BG-1)."""
    ram = CII_NS["ram"]
    document = root.find(_q(CII_NS["rsm"], "ExchangedDocument"))
    moved = 0
    for line in list(root.iter(_q(ram, "IncludedSupplyChainTradeLineItem"))):
        if line.find(_q(ram, "SpecifiedTradeProduct")) is not None or line.find(
            f".//{_q(ram, 'BilledQuantity')}"
        ) is not None or line.find(f".//{_q(ram, 'LineTotalAmount')}") is not None:
            continue
        parent = line.getparent()
        if document is None or parent is None:
            continue
        for note in line.iter(_q(ram, "IncludedNote")):
            document.append(copy.deepcopy(note))
        parent.remove(line)
        moved += 1
    if moved:
        notes.append(f"{moved} text line(s) (a note without product, quantity or amount): "
                     "carried as invoice notes (BG-1)")


def _decimal(text: str | None) -> Decimal | None:
    try:
        return Decimal((text or "").strip())
    except InvalidOperation:
        return None


def _complete_basic(
    settlement: etree._Element, lines: list[etree._Element], notes: list[str]
) -> None:
    """What ZUGFeRD 1.0 BASIC leaves implicit and EN 16931 requires (BR-26, BR-CO-04, BR-49,
    BR-CO-16 would fail without it), derived from what the document does state."""
    ram = CII_NS["ram"]
    header_taxes = settlement.findall(_q(ram, "ApplicableTradeTax"))
    priced = taxed = 0
    for line in lines:
        line_settlement = line.find(_q(ram, "SpecifiedLineTradeSettlement"))
        agreement = line.find(_q(ram, "SpecifiedLineTradeAgreement"))
        net = agreement.find(_q(ram, "NetPriceProductTradePrice")) if agreement is not None \
            else None
        total = line.findtext(f".//{_q(ram, 'LineTotalAmount')}")
        quantity = line.findtext(f".//{_q(ram, 'BilledQuantity')}")
        amount, count = _decimal(total), _decimal(quantity)
        if net is None and amount is not None and count:
            if agreement is None:
                agreement = etree.Element(_q(ram, "SpecifiedLineTradeAgreement"))
                line.insert(1, agreement)
            net = etree.SubElement(agreement, _q(ram, "NetPriceProductTradePrice"))
            price = (amount / count).quantize(Decimal("0.000001")).normalize()
            etree.SubElement(net, _q(ram, "ChargeAmount")).text = format(price, "f")
            priced += 1
        if line_settlement is not None and line_settlement.find(
            _q(ram, "ApplicableTradeTax")
        ) is None and len(header_taxes) == 1:
            tax = etree.Element(_q(ram, "ApplicableTradeTax"))
            for name in ("TypeCode", "CategoryCode", "RateApplicablePercent"):
                found = header_taxes[0].find(_q(ram, name))
                if found is not None:
                    tax.append(copy.deepcopy(found))
            line_settlement.insert(0, tax)
            taxed += 1
    if priced:
        notes.append(f"BT-146 Item net price: line net amount / quantity ({priced} lines)")
    if taxed:
        notes.append(f"BT-151/BT-152 line VAT: the invoice's only VAT breakdown ({taxed} lines)")
    for means in settlement.findall(_q(ram, "SpecifiedTradeSettlementPaymentMeans")):
        if means.find(_q(ram, "TypeCode")) is None:
            iban = means.find(f".//{_q(ram, 'IBANID')}") is not None
            code = etree.Element(_q(ram, "TypeCode"))
            code.text = "58" if iban else "1"
            means.insert(0, code)
            notes.append(f"BT-81 Payment means type code: {code.text} "
                         f"({'an IBAN: SEPA credit transfer' if iban else 'not stated'})")
    summation = settlement.find(_q(ram, "SpecifiedTradeSettlementHeaderMonetarySummation"))
    if summation is not None and summation.find(_q(ram, "DuePayableAmount")) is None:
        grand = _decimal(summation.findtext(_q(ram, "GrandTotalAmount")))
        if grand is not None:
            prepaid = _decimal(summation.findtext(_q(ram, "TotalPrepaidAmount"))) or 0
            due = etree.SubElement(summation, _q(ram, "DuePayableAmount"))
            due.text = format(grand - prepaid, "f")
            notes.append("BT-115 Amount due for payment: total with VAT minus paid amount")


def _complete(root: etree._Element, notes: list[str]) -> None:
    ram = CII_NS["ram"]
    transaction = root.find(_q(CII_NS["rsm"], "SupplyChainTradeTransaction"))
    if transaction is None:
        return
    lines = transaction.findall(_q(ram, "IncludedSupplyChainTradeLineItem"))
    numbered = False
    for number, line in enumerate(lines, start=1):
        document = line.find(_q(ram, "AssociatedDocumentLineDocument"))
        if document is None:
            document = etree.Element(_q(ram, "AssociatedDocumentLineDocument"))
            line.insert(0, document)
        line_id = document.find(_q(ram, "LineID"))
        if line_id is None or not (line_id.text or "").strip():
            if line_id is None:
                line_id = etree.Element(_q(ram, "LineID"))
                document.insert(0, line_id)
            line_id.text = str(number)
            numbered = True
    if numbered:
        notes.append("BT-126 Invoice line identifier: numbered 1, 2, ... (not in the document)")
    settlement = transaction.find(_q(ram, "ApplicableHeaderTradeSettlement"))
    if settlement is not None and settlement.find(_q(ram, "InvoiceCurrencyCode")) is None:
        found = root.xpath("//@currencyID")
        assert isinstance(found, list)
        currencies = {str(c) for c in found}
        if len(currencies) == 1:
            code = etree.Element(_q(ram, "InvoiceCurrencyCode"))
            code.text = currencies.pop()
            settlement.insert(0, code)
            notes.append(f"BT-5 Invoice currency code: {code.text}, from the amounts' currencyID")
    if settlement is not None:
        _complete_basic(settlement, lines, notes)
    categories = 0
    for tax in root.iter(_q(ram, "ApplicableTradeTax"), _q(ram, "CategoryTradeTax")):
        if tax.find(_q(ram, "CategoryCode")) is not None:
            continue
        rate = tax.findtext(_q(ram, "RateApplicablePercent"))
        try:
            positive = rate is not None and float(rate) > 0
        except ValueError:
            continue
        category = etree.SubElement(tax, _q(ram, "CategoryCode"))
        category.text = "S" if positive else "Z"
        categories += 1
    if categories:
        notes.append("BT-118/BT-151 VAT category code: S for a rate above 0, else Z "
                     f"({categories} taxes without one)")


def _leaf_paths(root: etree._Element) -> set[str]:
    """Paths (local names) of the elements and attributes that carry a value."""
    paths: set[str] = set()
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        steps = []
        node: etree._Element | None = element
        while node is not None and node is not root:
            steps.append(etree.QName(node).localname)
            node = node.getparent()
        path = "/".join(reversed(steps))
        if len(element) == 0 and (element.text or "").strip():
            paths.add(path)
    return paths


@dataclass(frozen=True)
class Mapping:
    """What reading a ZUGFeRD 1.0 document into EN 16931 did beyond renaming."""

    unmapped: tuple[str, ...] = ()  # element paths whose content EN 16931 cannot hold
    assumed: tuple[str, ...] = ()   # terms completed as the mapping defines (see to_cii)

    def warnings(self) -> tuple[str, ...]:
        """One line each for a conversion's warnings."""
        out = [f"ZUGFeRD 1.0 mapping: {note}" for note in self.assumed]
        if self.unmapped:
            shown = ", ".join(_short(path) for path in self.unmapped[:8])
            more = f" and {len(self.unmapped) - 8} more" if len(self.unmapped) > 8 else ""
            out.append(f"ZUGFeRD 1.0 content with no EN 16931 term, not carried "
                       f"({len(self.unmapped)}): {shown}{more}")
        return tuple(out)


def _short(path: str) -> str:
    return "/".join(path.split("/")[-3:])


def read_zugferd1(tree: etree._ElementTree | etree._Element) -> tuple[Invoice, Mapping]:
    """The invoice a ZUGFeRD 1.0 document states, and its Mapping: the paths of the elements
    EN 16931 cannot hold (sorted; in CII D16B names, which are ZUGFeRD 1.0's but for the
    renamings above) and the terms completed. Raises BindingError (naming the business term)
    on a value the model refuses."""
    assumed: list[str] = []
    dropped: list[str] = []
    cii = to_cii(tree, assumed, dropped)
    invoice = read_cii(cii)
    written = write_cii(invoice).getroot()
    lost = (_leaf_paths(cii) - _leaf_paths(written) - NOT_TERMS) | set(dropped)
    return invoice, Mapping(tuple(sorted(lost)), tuple(assumed))
