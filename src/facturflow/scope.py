"""Which regional rule families an invoice is in the scope of: French CTC, XRechnung, Peppol BIS.

The default rule selection follows the invoice (see facturflow.rules): the French CTC rules
(BR-FR, EXTENDED-CTC-FR) apply when the invoice is in the French scope, the XRechnung rules when
it declares XRechnung, the Peppol BIS rules when it declares Peppol BIS. `scope_of` decides from
four business terms read from the already-parsed tree (a handful of element lookups, no XPath
engine, so it costs nothing next to the Schematron):

    BT-40  seller country                CII SellerTradeParty/PostalTradeAddress/CountryID,
                                         UBL AccountingSupplierParty/.../Country/IdentificationCode
    BT-24  specification identifier      the guideline ID / CustomizationID (Document.spec_id)
    BT-23  business process              CII BusinessProcessSpecifiedDocumentContextParameter/ID,
                                         UBL ProfileID
    BT-21  note subject code             CII IncludedNote/SubjectCode, UBL Note "#BAR#..."

French scope: the seller is French (BT-40 = FR); or BT-24 declares a French CIUS
(`urn.cpro.gouv.fr:1p0:en16931-ctc-fr`, `...:extended-ctc-fr`); or BT-23 is a French
"cadre de facturation" code (B1, S1, M1, ... the values BR-FR-08 accepts); or a note carries
the French processing subject BAR (BR-FR-20); or no seller country is given at all (in doubt,
the French rules apply). XRechnung: BT-24 names XRechnung (any version). Peppol BIS: BT-24
names Peppol BIS Billing 3.0 (`urn:fdc:peppol.eu:2017:poacc:billing:3.0`); an XRechnung sent
over Peppol declares the Peppol process in BT-23 but is judged by XRechnung, as KoSIT does.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from .detection import NS_CBC, NS_CII, NS_RAM, NS_ZUGFERD1, NS_ZUGFERD1_RAM, Document

NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"

# The "cadre de facturation" codes BR-FR-08 accepts in BT-23 (French CTC, Flux 2).
FRENCH_BUSINESS_PROCESSES = frozenset(
    {"B1", "S1", "M1", "B2", "S2", "M2", "S3", "B4", "S4", "M4"}
    | {"S5", "S6", "B7", "S7", "B8", "S8", "M8", "B9", "S9", "M9"}
)
FRENCH_CIUS_MARKERS = ("urn.cpro.gouv.fr:", "en16931-ctc-fr", "extended-ctc-fr")
PEPPOL_BIS_BILLING = "urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROCESS = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
FRENCH_NOTE_SUBJECT = "BAR"

_CII = {"rsm": NS_CII, "ram": NS_RAM}
_ZF1 = {"rsm": NS_ZUGFERD1, "ram": NS_ZUGFERD1_RAM}
_UBL = {"cac": NS_CAC, "cbc": NS_CBC}


@dataclass(frozen=True)
class Scope:
    """What `scope_of` read from an invoice and what it concluded, with the reasons."""

    seller_country: str | None
    spec_id: str | None
    business_process: str | None
    french_note: bool
    french: bool
    xrechnung: bool
    peppol: bool
    french_reason: str
    xrechnung_reason: str
    peppol_reason: str

    def as_dict(self) -> dict[str, object]:
        """The `scope` object of the JSON report."""
        return {
            "seller_country": self.seller_country,
            "specification_id": self.spec_id,
            "business_process": self.business_process,
            "french": {"in_scope": self.french, "reason": self.french_reason},
            "xrechnung": {"in_scope": self.xrechnung, "reason": self.xrechnung_reason},
            "peppol": {"in_scope": self.peppol, "reason": self.peppol_reason},
        }


def _text(root: etree._Element, path: str, namespaces: dict[str, str]) -> str | None:
    found = root.find(path, namespaces)
    if found is None or not isinstance(found.text, str):
        return None
    return found.text.strip() or None


def _read(document: Document) -> tuple[str | None, str | None, bool]:
    """(BT-40, BT-23, a BAR note present) from the document's tree."""
    root = document.tree.getroot()
    if document.syntax == "cii":
        country = _text(
            root,
            "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/"
            "ram:SellerTradeParty/ram:PostalTradeAddress/ram:CountryID",
            _CII,
        )
        process = _text(
            root,
            "rsm:ExchangedDocumentContext/ram:BusinessProcessSpecifiedDocumentContextParameter/"
            "ram:ID",
            _CII,
        )
        note = any(
            (s.text or "").strip() == FRENCH_NOTE_SUBJECT
            for s in root.iterfind("rsm:ExchangedDocument/ram:IncludedNote/ram:SubjectCode", _CII)
        )
        return country, process, note
    if document.syntax == "zugferd1":
        country = _text(
            root,
            "rsm:SpecifiedSupplyChainTradeTransaction/ram:ApplicableSupplyChainTradeAgreement/"
            "ram:SellerTradeParty/ram:PostalTradeAddress/ram:CountryID",
            _ZF1,
        )
        return country, None, False
    country = _text(
        root,
        "cac:AccountingSupplierParty/cac:Party/cac:PostalAddress/cac:Country/cbc:IdentificationCode",
        _UBL,
    )
    process = _text(root, "cbc:ProfileID", _UBL)
    # UBL carries the note subject (BT-21) inside the note text as "#BAR#B2B".
    note = any(
        (n.text or "").lstrip().upper().startswith(f"#{FRENCH_NOTE_SUBJECT}#")
        for n in root.iterfind("cbc:Note", _UBL)
    )
    return country, process, note


def scope_of(document: Document) -> Scope:
    """The regional rule families the invoice is in the scope of, and why (see module doc)."""
    country, process, note = _read(document)
    country = country.upper() if country else None
    spec = document.spec_id or ""
    spec_lower = spec.lower()
    cius = next((m for m in FRENCH_CIUS_MARKERS if m in spec_lower), None)
    if country == "FR":
        french, why = True, "seller country (BT-40) is FR"
    elif cius:
        french, why = True, f"a French CIUS is declared (BT-24 {spec})"
    elif process in FRENCH_BUSINESS_PROCESSES:
        french, why = True, f"a French business process is declared (BT-23 {process})"
    elif note:
        french, why = True, "a French processing note is declared (BT-21 subject BAR)"
    elif country is None:
        french, why = True, "no seller country (BT-40): in doubt, the French rules apply"
    else:
        french, why = (
            False,
            f"seller country {country}, no French CIUS, business process or BAR note declared",
        )
    xrechnung = "xrechnung" in spec_lower
    x_why = (
        f"BT-24 declares XRechnung ({spec})"
        if xrechnung
        else f"BT-24 does not declare XRechnung ({spec or 'no BT-24'})"
    )
    peppol = PEPPOL_BIS_BILLING in spec_lower
    if peppol:
        p_why = f"BT-24 declares Peppol BIS Billing 3.0 ({spec})"
    elif process == PEPPOL_PROCESS:
        p_why = (
            f"BT-23 names the Peppol billing process but BT-24 does not declare Peppol BIS "
            f"({spec or 'no BT-24'})"
        )
    else:
        p_why = f"BT-24 does not declare Peppol BIS ({spec or 'no BT-24'})"
    return Scope(
        seller_country=country,
        spec_id=document.spec_id,
        business_process=process,
        french_note=note,
        french=french,
        xrechnung=xrechnung,
        peppol=peppol,
        french_reason=why,
        xrechnung_reason=x_why,
        peppol_reason=p_why,
    )
