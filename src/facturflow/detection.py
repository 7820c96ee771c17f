"""Detect what an input is: container, syntax and profile; the parsed XML is kept for later."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeAlias, get_args

from lxml import etree

from .errors import (
    EmptyInputError,
    InputError,
    NotAnInvoiceError,
)
from .xmlsafe import DEFAULT_LIMITS, Limits, clip, parse_xml, serialize, utf8_as_is

if TYPE_CHECKING:  # pypdf is only loaded when an input is a PDF
    from .pdf import Attachment, PdfParts

Source: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | BinaryIO"
Container = Literal["xml", "pdf"]
# "cdar": a CrossDomainAcknowledgementAndResponse D22B lifecycle message (French CTC statuses),
# not an invoice: detected only when asked (`lifecycle=True`), validated, never converted or sent.
Syntax = Literal["cii", "ubl-invoice", "ubl-creditnote", "zugferd1", "cdar"]
Profile = Literal[
    "minimum",
    "basicwl",
    "basic",
    "en16931",
    "extended",
    "extended-ctc-fr",
    "xrechnung",
    "peppol",
    "cdv",
    "unknown",
]
# The invoice syntaxes and profiles (what rule packs may name); CDAR is no invoice.
PROFILES: tuple[str, ...] = tuple(p for p in get_args(Profile) if p != "cdv")
SYNTAXES: tuple[str, ...] = tuple(s for s in get_args(Syntax) if s != "cdar")

NS_CII = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
NS_RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
NS_UBL_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_UBL_CREDITNOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS_ZUGFERD1 = "urn:ferd:CrossIndustryDocument:invoice:1p0"
NS_CDAR = "urn:un:unece:uncefact:data:standard:CrossDomainAcknowledgementAndResponse:100"
NS_ZUGFERD1_RAM = (
    "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12"
)

# Root elements matched on exact namespace and local name, never on a suffix.
_ROOTS: dict[str, Syntax] = {
    f"{{{NS_CII}}}CrossIndustryInvoice": "cii",
    f"{{{NS_UBL_INVOICE}}}Invoice": "ubl-invoice",
    f"{{{NS_UBL_CREDITNOTE}}}CreditNote": "ubl-creditnote",
    f"{{{NS_ZUGFERD1}}}CrossIndustryDocument": "zugferd1",
    f"{{{NS_CDAR}}}CrossDomainAcknowledgementAndResponse": "cdar",
}
CDAR_NOT_AN_INVOICE = (
    "this is a CDAR lifecycle message, not an invoice (check it with `facturflow validate`)"
)

# Well-known non-invoice vocabularies, named in the error so users know what they handed in.
_KNOWN_OTHERS = {
    "urn:un:unece:uncefact:data:SCRDMCCBDACIOMessageStructure:100": "an Order-X order",
    "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2": "a FatturaPA invoice (Italy)",
    "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.1": "a FatturaPA invoice (Italy)",
    "urn:oasis:names:specification:ubl:schema:xsd:Order-2": "a UBL Order",
    "urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2": (
        "a UBL ApplicationResponse"
    ),
    "http://purl.oclc.org/dsdl/svrl": "an SVRL validation report",
}

_GUIDELINE_XPATH = {
    "cii": (
        "/rsm:CrossIndustryInvoice/rsm:ExchangedDocumentContext"
        "/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"
    ),
    "zugferd1": (
        "/rsm:CrossIndustryDocument/rsm:SpecifiedExchangedDocumentContext"
        "/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"
    ),
    "ubl-invoice": "/inv:Invoice/cbc:CustomizationID",
    "ubl-creditnote": "/cn:CreditNote/cbc:CustomizationID",
    "cdar": (
        "/rsm:CrossDomainAcknowledgementAndResponse/rsm:ExchangedDocumentContext"
        "/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"
    ),
}
_NSMAPS = {
    "cii": {"rsm": NS_CII, "ram": NS_RAM},
    "zugferd1": {"rsm": NS_ZUGFERD1, "ram": NS_ZUGFERD1_RAM},
    "ubl-invoice": {"inv": NS_UBL_INVOICE, "cbc": NS_CBC},
    "ubl-creditnote": {"cn": NS_UBL_CREDITNOTE, "cbc": NS_CBC},
    "cdar": {"rsm": NS_CDAR, "ram": NS_RAM},
}
_LEVEL_TOKENS = {"minimum", "basicwl", "basic", "en16931", "extended"}


def profile_from_spec_id(spec_id: str | None) -> Profile:
    """Map a CII guideline ID or UBL CustomizationID (BT-24) to a profile name."""
    if not spec_id:
        return "unknown"
    value = spec_id.strip().lower()
    if "xrechnung" in value:
        return "xrechnung"
    if "peppol.eu" in value:
        return "peppol"
    if value.endswith("extended-ctc-fr"):
        return "extended-ctc-fr"
    last = re.split(r"[#:]", value)[-1]
    if last in _LEVEL_TOKENS:
        return last  # type: ignore[return-value]
    if value.startswith("urn:cen.eu:en16931:2017"):
        # Any other CIUS of EN 16931 (e.g. the French en16931-ctc-fr) is checked as EN 16931.
        return "en16931"
    return "unknown"


@dataclass(frozen=True, eq=False)
class Document:
    """A detected invoice: what it is, its XML (parsed once) and, for a PDF, the PDF's parts."""

    name: str
    container: Container
    syntax: Syntax
    profile: Profile
    spec_id: str | None
    xml: bytes
    tree: etree._ElementTree = field(repr=False)
    pdf: PdfParts | None = field(default=None, repr=False)
    pdf_bytes: bytes | None = field(default=None, repr=False)
    attachment_name: str | None = None
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, str]:
        """The stable JSON shape of `facturflow detect --format json`."""
        return {
            "path": self.name,
            "container": self.container,
            "syntax": self.syntax,
            "profile": self.profile,
        }


def read_source(source: Source, *, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, str]:
    """Read a path, bytes or binary file object; return (bytes, a name for reports)."""
    if isinstance(source, bytes | bytearray):
        data, name = bytes(source), "<bytes>"
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = str(source)
        try:
            status = path.stat()
            if stat.S_ISDIR(status.st_mode):
                raise InputError("is a directory, not a file", source=name)
            if not stat.S_ISREG(status.st_mode):
                # A FIFO would block and a device (/dev/zero) never ends, even behind a symlink.
                raise InputError("is not a regular file (a device, FIFO or socket)", source=name)
            if status.st_size > limits.max_bytes:
                raise limits.too_large(
                    "max_bytes", f"{status.st_size} bytes",
                    f"{status.st_size} bytes exceeds the limit of {limits.max_bytes} bytes", name)
            with path.open("rb") as handle:  # bounded, should the file grow meanwhile
                data = handle.read(limits.max_bytes + 1)
        except FileNotFoundError:
            raise InputError("no such file", source=name) from None
        except PermissionError:
            raise InputError("permission denied", source=name) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", source=name) from None
    elif hasattr(source, "read"):
        name = str(getattr(source, "name", "<stream>"))
        data = source.read(limits.max_bytes + 1)
        if not isinstance(data, bytes | bytearray):
            raise InputError("file object must be opened in binary mode", source=name)
        data = bytes(data)
    else:
        raise TypeError(f"cannot read an invoice from {type(source).__name__}")
    if len(data) > limits.max_bytes:
        raise limits.too_large(
            "max_bytes", f"more than {limits.max_bytes} bytes",
            f"more than {limits.max_bytes} bytes (the size limit)", name)
    if not data.strip():
        raise EmptyInputError("the input is empty", source=name)
    return data, name


def _classify(tree: etree._ElementTree, name: str) -> tuple[Syntax, str | None, Profile]:
    root = tree.getroot()
    tag = root.tag if isinstance(root.tag, str) else ""
    syntax = _ROOTS.get(tag)
    if syntax is None:
        qname = etree.QName(root) if tag else None
        namespace = qname.namespace if qname else None
        local = qname.localname if qname else "?"
        if namespace in _KNOWN_OTHERS:
            what = _KNOWN_OTHERS[namespace]
            raise NotAnInvoiceError(f"this is {what}, not a supported invoice", source=name)
        raise NotAnInvoiceError(
            f"root element {clip(local, 100)!r} in namespace {clip(namespace or '(none)')!r} "
            "is not a CII CrossIndustryInvoice, a UBL Invoice or CreditNote, or a ZUGFeRD 1.0 "
            "document",
            source=name,
        )
    found = tree.xpath(_GUIDELINE_XPATH[syntax], namespaces=_NSMAPS[syntax])
    if not found and syntax in ("cii", "zugferd1"):
        # A misplaced context parameter still says which profile was meant; the XSD reports
        # the misplacement.
        found = tree.xpath(
            "(//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID)[1]",
            namespaces=_NSMAPS[syntax],
        )
    first = found[0] if isinstance(found, list) and found else None
    text = first.text if isinstance(first, etree._Element) else None
    spec_id = text.strip() if text else None
    if syntax == "cdar":
        # The French lifecycle guidelines (urn.cpro.gouv.fr:1p0:CDV:invoice, ...:einvoicingF2).
        cdv = (spec_id or "").lower().startswith("urn.cpro.gouv.fr:1p0:cdv:")
        return syntax, spec_id, "cdv" if cdv else "unknown"
    return syntax, spec_id, profile_from_spec_id(spec_id)


def detect(
    source: Source | Document, *, limits: Limits = DEFAULT_LIMITS, lifecycle: bool = False
) -> Document:
    """Detect container, syntax and profile of an invoice given as a path, bytes or file object.

    Raises an InputError subclass (documented in facturflow.errors) when the input is not a
    readable invoice. A CDAR lifecycle message raises NotAnInvoiceError saying so, unless
    `lifecycle` is true: then it is a Document of syntax "cdar" (what `validate` and
    `facturflow detect` ask for; converting or sending one must not get that far).
    """
    if isinstance(source, Document):
        if source.syntax == "cdar" and not lifecycle:
            raise NotAnInvoiceError(CDAR_NOT_AN_INVOICE, source=source.name)
        return source
    data, name = read_source(source, limits=limits)
    return detect_bytes(data, name=name, limits=limits, lifecycle=lifecycle)


def detect_bytes(
    data: bytes, *, name: str, limits: Limits = DEFAULT_LIMITS, lifecycle: bool = False
) -> Document:
    """Detect from bytes already read; `name` labels the input in errors and reports."""
    head = data.lstrip()[:8]
    if head.startswith(b"%PDF-"):
        return _detect_pdf(data, name, limits)
    if _looks_like_xml(data):
        tree = parse_xml(data, source=name, limits=limits)
        syntax, spec_id, profile = _classify(tree, name)
        if syntax == "cdar" and not lifecycle:
            raise NotAnInvoiceError(CDAR_NOT_AN_INVOICE, source=name)
        return _document(
            name, "xml", syntax, spec_id, profile, tree, None, None, None, utf8_as_is(data)
        )
    raise NotAnInvoiceError(f"neither XML nor PDF (starts with {data[:16]!r})", source=name)


def detect_embedded(
    data: bytes, *, name: str, attachment: str, limits: Limits = DEFAULT_LIMITS
) -> Document:
    """The invoice a PDF carries as `attachment`, detected from that embedded file alone.

    For reading again a PDF whose validation (detect, every check) named its invoice XML: the
    reports read the key data this way. The PDF is opened within the same bounds as by detect,
    but its structure (qpdf), XMP and other attachments are not looked at, so the Document has
    no `pdf` parts: it cannot be validated as a PDF (use detect for that).
    """
    from .pdf import embedded_file

    label = f"{name}!{clip(attachment, 100)}"
    content = embedded_file(data, attachment, source=name)
    tree = parse_xml(content, source=label, limits=limits)
    syntax, spec_id, profile = _classify(tree, label)
    if syntax == "cdar":
        raise NotAnInvoiceError(CDAR_NOT_AN_INVOICE, source=label)
    return _document(
        name, "pdf", syntax, spec_id, profile, tree, None, None, attachment, utf8_as_is(content)
    )


def _looks_like_xml(data: bytes) -> bool:
    stripped = data.lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")
    return stripped.startswith(b"<") or data[:2] in (b"\xff\xfe", b"\xfe\xff")


def _detect_pdf(data: bytes, name: str, limits: Limits) -> Document:
    from .pdf import INVOICE_XML_NAMES, read_pdf

    parts = read_pdf(data, source=name)
    candidates = parts.candidate_attachments()
    if not candidates:
        raise parts.no_invoice_error(name)
    first_error: InputError | None = None
    for attachment in candidates:
        label = f"{name}!{clip(attachment.name, 100)}"
        try:
            tree = parse_xml(attachment.data, source=label, limits=limits)
            syntax, spec_id, profile = _classify(tree, label)
            if syntax == "cdar":  # a lifecycle message is never a PDF's invoice
                raise NotAnInvoiceError(CDAR_NOT_AN_INVOICE, source=label)
        except InputError as exc:
            # A standard-named attachment that is broken is the answer; an odd .xml is skipped.
            if attachment.name in INVOICE_XML_NAMES:
                raise
            first_error = first_error or exc
            continue
        document = _document(
            name,
            "pdf",
            syntax,
            spec_id,
            profile,
            tree,
            parts,
            data,
            attachment.name,
            utf8_as_is(attachment.data),
        )
        others = _competing_invoices(parts, attachment)
        if others:
            document = replace(
                document,
                warnings=(
                    *document.warnings,
                    f"the PDF carries {len(others) + 1} different invoice XMLs "
                    f"({clip(', '.join([attachment.name, *others]))}); "
                    f"using {clip(attachment.name, 100)}",
                ),
            )
        return document
    raise first_error or parts.no_invoice_error(name)


def _competing_invoices(parts: PdfParts, chosen: Attachment) -> list[str]:
    """Names of other standard invoice attachments whose content differs from the chosen one."""
    return [
        a.name
        for a in parts.invoice_attachments()
        if a.name != chosen.name and a.data != chosen.data
    ]


def _document(
    name: str,
    container: Container,
    syntax: Syntax,
    spec_id: str | None,
    profile: Profile,
    tree: etree._ElementTree,
    parts: PdfParts | None,
    pdf_bytes: bytes | None,
    attachment_name: str | None,
    xml: bytes | None = None,
) -> Document:
    warnings: list[str] = []
    if syntax == "cdar":
        if profile == "unknown":
            warnings.append(
                f"unknown CDAR guideline {clip(spec_id)!r}: checked against the CDAR D22B XSD "
                "and the BR-FR-CDV rules"
                if spec_id
                else "no CDAR guideline (GuidelineSpecifiedDocumentContextParameter): checked "
                "against the CDAR D22B XSD and the BR-FR-CDV rules"
            )
    elif profile == "unknown":
        warnings.append(
            f"unknown profile {clip(spec_id)!r}: validating against the EN 16931 rules"
            if spec_id
            else "no specification identifier (BT-24): validating against the EN 16931 rules"
        )
    if xml is None:
        xml = serialize(tree)
    return Document(
        name=name,
        container=container,
        syntax=syntax,
        profile=profile,
        spec_id=spec_id,
        xml=xml,
        tree=tree,
        pdf=parts,
        pdf_bytes=pdf_bytes,
        attachment_name=attachment_name,
        warnings=tuple(warnings),
    )
