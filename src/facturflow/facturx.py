"""Build a Factur-X PDF/A-3 (a PDF with its CII XML embedded as factur-x.xml) and extract it back.

`embed_xml` wraps any PDF: the CII bytes go in unchanged (no re-serialisation, so extraction
gives back exactly what went in) as an associated file listed both in the EmbeddedFiles name
tree and in the catalogue /AF array, with the MIME type text/xml and the AFRelationship the
Factur-X specification gives for the profile. The XMP packet comes from the factur-x package's
own XMP builder (pdfaid part 3 and the Factur-X PDF/A extension schema), and the Info
dictionary is rewritten to agree with it, as PDF/A requires. An sRGB output intent is added
when the PDF has none.

The embedding itself is done here with pypdf rather than through
`facturx.generate_from_binary`, because that function cannot do what a Factur-X PDF/A needs
here: it rejects the EXTENDED-CTC-FR profile, reads the clock twice (so the Info and XMP
dates can disagree across a second boundary), discards the PDF's other attachments from /AF
and the name tree, and adds no output intent.

`build_facturx` renders a readable invoice page when no PDF is supplied (see
facturflow.render), then embeds.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Final

from facturx import facturx as _fx
from lxml import etree
from pypdf import PdfWriter
from pypdf.errors import PdfReadError, PyPdfError
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    StreamObject,
    TextStringObject,
)

from .detection import Document, detect_bytes
from .errors import ConversionError, MalformedPDFError, NoInvoiceInPDFError
from .pdf import INVOICE_XML_NAMES, open_untrusted, read_pdf
from .xmlsafe import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .model import Invoice
    from .render import Language

FACTURX_XML_NAME: Final = "factur-x.xml"
FACTURX_XMP_URN: Final = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"

# Factur-X 1.0 (§ "XMP" and "Embedding"): the fx:ConformanceLevel per profile, and the
# AFRelationship of factur-x.xml. MINIMUM and BASIC WL do not carry the whole invoice, so the
# PDF stays the reference ("Data"); from BASIC on the XML is an alternative representation.
CONFORMANCE_LEVELS: Final[dict[str, str]] = {
    "minimum": "MINIMUM",
    "basicwl": "BASIC WL",
    "basic": "BASIC",
    "en16931": "EN 16931",
    "extended": "EXTENDED",
    # The French CTC profile is an EXTENDED flavour; Factur-X 1.07 keeps the XMP level EXTENDED.
    "extended-ctc-fr": "EXTENDED",
    "xrechnung": "XRECHNUNG",
}
AF_RELATIONSHIPS: Final[dict[str, str]] = {
    "minimum": "Data",
    "basicwl": "Data",
    "basic": "Alternative",
    "en16931": "Alternative",
    "extended": "Alternative",
    "extended-ctc-fr": "Alternative",
    "xrechnung": "Alternative",
}
FACTURX_PROFILES: Final = tuple(CONFORMANCE_LEVELS)

_NS_RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
_NS_RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
_NS_UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
_NS = {"rsm": _NS_RSM, "ram": _NS_RAM, "udt": _NS_UDT}
_NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_MAX_TREE_NODES = 10_000
_ISSUE_DATE = (
    "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString"
)
# The date of a Factur-X whose CII has no readable issue date (BT-2 is mandatory, BR-02).
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PdfMetadata:
    """What the Info dictionary and the XMP say about the document (kept identical in both)."""

    title: str
    author: str
    subject: str


def producer() -> str:
    """The Producer / CreatorTool written into the Info dictionary and the XMP."""
    from . import __version__  # at call time: facturflow/__init__ imports this module

    return f"facturflow {__version__}"


def srgb_icc_profile() -> bytes:
    """The sRGB ICC profile (sRGB2014, ICC v2) that fpdf2 ships, for the PDF/A output intent."""
    from importlib.resources import files

    return files("fpdf.data.color_profiles").joinpath("sRGB2014.icc").read_bytes()


def facturx_profile(document: Document) -> str:
    """The Factur-X profile of a detected CII document; ConversionError if it has none."""
    if document.syntax != "cii":
        raise ConversionError(
            f"a Factur-X PDF embeds CII; this is {document.syntax}", source=document.name
        )
    if document.profile not in CONFORMANCE_LEVELS:
        raise ConversionError(
            f"the CII guideline {document.spec_id!r} (BT-24) is not a Factur-X profile "
            f"({', '.join(FACTURX_PROFILES)})",
            source=document.name,
        )
    return document.profile


def issue_timestamp(issued: date | None) -> datetime:
    """The date a Factur-X built for an invoice carries: its issue date (BT-2) at 00:00:00 UTC.

    The PDF's and the XMP's dates come from the invoice rather than the clock, so converting
    the same invoice twice gives the same bytes (a duplicate-detecting receiver sees one
    document); EPOCH stands in when there is no issue date.
    """
    return datetime.combine(issued, time(0), tzinfo=UTC) if issued is not None else EPOCH


def cii_issue_date(document: Document) -> date | None:
    """The issue date (BT-2) of a detected CII, or None when it is absent or not a date."""
    found = document.tree.xpath(_ISSUE_DATE, namespaces=_NS)
    if not (isinstance(found, list) and found and isinstance(found[0], etree._Element)):
        return None
    raw = "".join((found[0].text or "").split())
    try:
        # Format 102 (YYYYMMDD) is the only one EN 16931 admits; take an ISO date too.
        return datetime.strptime(raw, "%Y%m%d").date() if len(raw) == 8 \
            else date.fromisoformat(raw)
    except ValueError:
        return None


def metadata_from_cii(document: Document) -> PdfMetadata:
    """Title, author and subject from the invoice number, seller and issue date of a CII."""

    def text(path: str) -> str:
        found = document.tree.xpath(path, namespaces=_NS)
        if isinstance(found, list) and found and isinstance(found[0], etree._Element) \
                and found[0].text:
            return " ".join(found[0].text.split())
        return ""

    number = text("/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:ID")
    seller = text(
        "/rsm:CrossIndustryInvoice/rsm:SupplyChainTradeTransaction"
        "/ram:ApplicableHeaderTradeAgreement/ram:SellerTradeParty/ram:Name"
    )
    raw_date = text(_ISSUE_DATE)
    issued = f"{raw_date[:4]}-{raw_date[4:6]}-{raw_date[6:8]}" if len(raw_date) == 8 else raw_date
    title = f"{seller}: invoice {number}" if seller else f"Invoice {number}"
    subject = f"Factur-X invoice {number}" + (f" dated {issued}" if issued else "")
    if seller:
        subject += f" issued by {seller}"
    return PdfMetadata(title=title, author=seller, subject=subject)


def xmp_packet(profile: str, metadata: PdfMetadata, timestamp: datetime) -> bytes:
    """The XMP packet: pdfaid 3B, Dublin Core, and the Factur-X extension schema and values."""
    made_by = producer()
    root = _fx.generate_xmp_object(
        {
            "pdfa3_flavor": "B",
            "title": metadata.title,
            "author": metadata.author,
            "subject": metadata.subject,
            "producer": made_by,
            "creator_tool": made_by,
            "timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "version": "1.0",
            "documenttype": "INVOICE",
            "xml_filename": FACTURX_XML_NAME,
            "xmp_level": CONFORMANCE_LEVELS[profile],
            "urn": FACTURX_XMP_URN,
        }
    )
    # XMP (ISO 16684-1, 7.4) gives every top-level rdf:Description an rdf:about; strict PDF/A
    # validators flag its absence.
    for description in root.iter(f"{{{_NS_RDF}}}Description"):
        if f"{{{_NS_RDF}}}about" not in description.attrib:
            description.set(f"{{{_NS_RDF}}}about", "")
    body = etree.tostring(root, encoding="UTF-8", pretty_print=True).decode("utf-8").strip()
    # The trailing padding lets a later tool update the packet in place (XMP spec, 7.3.2).
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        + body
        + "\n"
        + (" " * 99 + "\n") * 20
        + '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def _utc(timestamp: datetime) -> datetime:
    """`timestamp` in UTC to the second (a naive one is taken as UTC, not as local time, so the
    TZ of the machine cannot change the bytes)."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return timestamp.astimezone(UTC).replace(microsecond=0)


def _pdf_date(timestamp: datetime) -> str:
    return timestamp.strftime("D:%Y%m%d%H%M%S+00'00'")


def _resolve(obj: PdfObject | None) -> PdfObject | None:
    for _ in range(32):
        if not isinstance(obj, IndirectObject):
            return obj
        obj = obj.get_object()
    return None


def _filespec_name(spec: PdfObject | None) -> str | None:
    spec = _resolve(spec)
    if not isinstance(spec, DictionaryObject):
        return None
    for key in ("/UF", "/F"):
        value = _resolve(spec.get(key))
        if value is not None:
            return str(value)
    return None


def _existing_name_tree(root: DictionaryObject) -> list[tuple[str, PdfObject]]:
    """The leaves of the PDF's EmbeddedFiles name tree (bounded walk)."""
    names = _resolve(root.get("/Names"))
    if not isinstance(names, DictionaryObject):
        return []
    leaves: list[tuple[str, PdfObject]] = []
    stack: list[PdfObject | None] = [names.get("/EmbeddedFiles")]
    seen: set[int] = set()
    budget = _MAX_TREE_NODES
    while stack:
        node = _resolve(stack.pop())
        if not isinstance(node, DictionaryObject) or id(node) in seen:
            continue
        seen.add(id(node))
        budget -= 1
        if budget < 0:
            raise MalformedPDFError("the embedded-files name tree is too large or cyclic")
        pairs = _resolve(node.get("/Names"))
        if isinstance(pairs, ArrayObject):
            for i in range(0, len(pairs) - 1, 2):
                leaves.append((str(_resolve(pairs[i])), pairs[i + 1]))
        kids = _resolve(node.get("/Kids"))
        if isinstance(kids, ArrayObject):
            stack.extend(kids)
    return leaves


def _open_writer(pdf: bytes) -> PdfWriter:
    if not pdf.lstrip()[:5].startswith(b"%PDF-"):
        raise MalformedPDFError("not a PDF (no %PDF- header)")
    # The visual PDF comes from the user: the same structure and inflation bounds as any input.
    try:
        with open_untrusted(
            pdf, encrypted="the PDF is encrypted; PDF/A forbids encryption, supply an "
            "unencrypted PDF",
        ) as reader:
            if len(reader.pages) == 0:
                raise MalformedPDFError("the PDF has no page")
            return PdfWriter(clone_from=reader)
    except MalformedPDFError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, RecursionError, OSError, AssertionError) as exc:
        raise MalformedPDFError(f"cannot read the PDF: {exc}") from None


def embed_xml(
    pdf: bytes,
    xml: bytes,
    *,
    profile: str | None = None,
    metadata: PdfMetadata | None = None,
    lang: str | None = None,
    timestamp: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """Return `pdf` as a Factur-X PDF/A-3 carrying `xml` (CII bytes, embedded unchanged).

    `profile` defaults to the one the CII's guideline ID (BT-24) names; `metadata` defaults to
    one drawn from the CII; `timestamp` dates the XMP, the Info dictionary and the attachment
    (default: the CII's issue date at 00:00:00 UTC, see issue_timestamp). The result depends on
    nothing but the arguments: no clock, no randomness, so the same inputs give the same bytes.
    Any invoice XML the PDF already carried is replaced; other attachments are kept.
    Raises ConversionError for a non-CII or non-Factur-X XML, MalformedPDFError for a bad PDF.
    `limits` bounds the XML read (facturflow.Limits).
    """
    document = detect_bytes(xml, name="<xml>", limits=limits)
    detected = facturx_profile(document)
    profile = profile or detected
    if profile not in CONFORMANCE_LEVELS:
        raise ConversionError(
            f"unknown Factur-X profile {profile!r} (expected one of {', '.join(FACTURX_PROFILES)})"
        )
    metadata = metadata or metadata_from_cii(document)
    when = _utc(timestamp or issue_timestamp(cii_issue_date(document)))

    writer = _open_writer(pdf)
    root = writer.root_object

    # The embedded file stream: MIME type, size, dates and checksum as PDF/A-3 (6.8) asks.
    stream = DecodedStreamObject()
    stream.set_data(xml)
    encoded = stream.flate_encode()
    encoded.update(
        {
            NameObject("/Type"): NameObject("/EmbeddedFile"),
            NameObject("/Subtype"): NameObject("/text/xml"),
            NameObject("/Params"): DictionaryObject(
                {
                    NameObject("/Size"): NumberObject(len(xml)),
                    NameObject("/ModDate"): TextStringObject(_pdf_date(when)),
                    NameObject("/CheckSum"): ByteStringObject(hashlib.md5(xml).digest()),
                }
            ),
        }
    )
    stream_ref = writer._add_object(encoded)
    name_obj = TextStringObject(FACTURX_XML_NAME)
    filespec_ref = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Filespec"),
                NameObject("/F"): name_obj,
                NameObject("/UF"): name_obj,
                NameObject("/Desc"): TextStringObject("Factur-X invoice (CII XML)"),
                NameObject("/AFRelationship"): NameObject(f"/{AF_RELATIONSHIPS[profile]}"),
                NameObject("/EF"): DictionaryObject(
                    {NameObject("/F"): stream_ref, NameObject("/UF"): stream_ref}
                ),
            }
        )
    )

    # Keep the PDF's other attachments; drop any invoice XML it already carried.
    leaves = [
        (name, spec)
        for name, spec in _existing_name_tree(root)
        if name not in INVOICE_XML_NAMES and _filespec_name(spec) not in INVOICE_XML_NAMES
    ]
    leaves.append((FACTURX_XML_NAME, filespec_ref))
    leaves.sort(key=lambda item: item[0])
    flat: list[PdfObject] = []
    for name, spec in leaves:
        flat += [TextStringObject(name), spec]
    names = _resolve(root.get("/Names"))
    names_dict = names if isinstance(names, DictionaryObject) else DictionaryObject()
    names_dict[NameObject("/EmbeddedFiles")] = DictionaryObject(
        {NameObject("/Names"): ArrayObject(flat)}
    )
    root[NameObject("/Names")] = names_dict

    af = _resolve(root.get("/AF"))
    kept_af = [
        entry
        for entry in (list(af)[:_MAX_TREE_NODES] if isinstance(af, ArrayObject) else [])
        if _filespec_name(entry) not in INVOICE_XML_NAMES
    ]
    root[NameObject("/AF")] = writer._add_object(ArrayObject([*kept_af, filespec_ref]))

    # XMP: replace whatever was there, uncompressed so any tool can read it.
    xmp = DecodedStreamObject()
    xmp.set_data(xmp_packet(profile, metadata, when))
    xmp.update(
        {NameObject("/Type"): NameObject("/Metadata"), NameObject("/Subtype"): NameObject("/XML")}
    )
    existing = root.get("/Metadata")
    if isinstance(existing, IndirectObject) and existing.pdf is writer:
        writer._replace_object(existing, xmp)  # in place: no orphaned old packet in the file
    else:
        root[NameObject("/Metadata")] = writer._add_object(xmp)

    if not isinstance(_resolve(root.get("/OutputIntents")), ArrayObject):
        _add_srgb_output_intent(writer)
    if lang:
        root[NameObject("/Lang")] = TextStringObject(lang)

    # Info must agree with the XMP (PDF/A-3, 6.6.2.3): rewrite it with exactly the same values.
    info = {
        "/Title": metadata.title,
        "/Author": metadata.author,
        "/Subject": metadata.subject,
        "/Creator": producer(),
        "/Producer": producer(),
        "/CreationDate": _pdf_date(when),
        "/ModDate": _pdf_date(when),
    }
    writer.metadata = info  # clears first: keys the XMP does not mirror (Keywords...) go

    # A deterministic file identifier (PDF/A requires one): the first part is kept when the
    # source had one, the second identifies this version, digested from everything in it (the
    # visual PDF, the CII, the date) and from nothing else: no clock, no chance.
    first = _id_part(writer._ID[0] if writer._ID else None) or hashlib.md5(pdf).digest()
    digest = hashlib.md5(
        first + hashlib.md5(pdf).digest() + xml + _pdf_date(when).encode()
    ).digest()
    writer._ID = ArrayObject([ByteStringObject(first), ByteStringObject(digest)])
    writer.pdf_header = b"%PDF-1.7"

    out = io.BytesIO()
    try:
        writer.write(out)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise MalformedPDFError(f"cannot rewrite the PDF: {exc}") from None
    return out.getvalue()


def _id_part(value: PdfObject | None) -> bytes | None:
    """The bytes of one part of a source's /ID (a hex or a literal string), None if unusable."""
    value = _resolve(value)
    if isinstance(value, ByteStringObject):
        return bytes(value) or None
    if isinstance(value, TextStringObject):
        return value.original_bytes or None
    return None


def _add_srgb_output_intent(writer: PdfWriter) -> None:
    icc = DecodedStreamObject()
    icc.set_data(srgb_icc_profile())
    encoded: StreamObject = icc.flate_encode()
    encoded.update(
        {NameObject("/N"): NumberObject(3), NameObject("/Alternate"): NameObject("/DeviceRGB")}
    )
    intent = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/OutputIntent"),
            NameObject("/S"): NameObject("/GTS_PDFA1"),
            NameObject("/OutputConditionIdentifier"): TextStringObject("sRGB"),
            NameObject("/OutputCondition"): TextStringObject("IEC 61966-2-1:1999"),
            NameObject("/RegistryName"): TextStringObject("http://www.color.org"),
            NameObject("/Info"): TextStringObject("sRGB2014 (v2)"),
            NameObject("/DestOutputProfile"): writer._add_object(encoded),
        }
    )
    writer.root_object[NameObject("/OutputIntents")] = ArrayObject([writer._add_object(intent)])


def unembedded_fonts(pdf: bytes, *, max_pages: int = 200) -> list[str]:
    """Base names of the fonts a PDF uses without embedding them (PDF/A forbids that).

    Walks each page's font resources and those of its form XObjects, one level deep; a wrapped
    visual PDF with such fonts yields a Factur-X file that is not PDF/A-3 conformant.
    """
    try:
        with open_untrusted(pdf) as reader:
            pages = list(reader.pages)[:max_pages]
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, RecursionError, OSError, AssertionError) as exc:
        raise MalformedPDFError(f"cannot read the PDF: {exc}") from None
    missing: set[str] = set()
    seen: set[int] = set()

    def fonts_of(resources: PdfObject | None, depth: int) -> None:
        resources = _resolve(resources)
        if not isinstance(resources, DictionaryObject) or id(resources) in seen:
            return
        seen.add(id(resources))
        fonts = _resolve(resources.get("/Font"))
        if isinstance(fonts, DictionaryObject):
            for ref in fonts.values():
                font = _resolve(ref)
                if isinstance(font, DictionaryObject) and not _font_is_embedded(font):
                    missing.add(str(font.get("/BaseFont", "?")).lstrip("/"))
        xobjects = _resolve(resources.get("/XObject"))
        if depth < 2 and isinstance(xobjects, DictionaryObject):
            for ref in xobjects.values():
                xobject = _resolve(ref)
                if isinstance(xobject, DictionaryObject) and xobject.get("/Subtype") == "/Form":
                    fonts_of(xobject.get("/Resources"), depth + 1)

    try:
        for page in pages:
            fonts_of(page.get("/Resources"), 0)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise MalformedPDFError(f"cannot read the PDF's fonts: {exc}") from None
    return sorted(missing)


def _font_is_embedded(font: DictionaryObject) -> bool:
    if font.get("/Subtype") == "/Type3":
        return True  # glyphs are content streams inside the PDF
    owner = font
    descendants = _resolve(font.get("/DescendantFonts"))
    if isinstance(descendants, ArrayObject) and descendants:
        child = _resolve(descendants[0])
        if isinstance(child, DictionaryObject):
            owner = child
    descriptor = _resolve(owner.get("/FontDescriptor"))
    return isinstance(descriptor, DictionaryObject) and any(
        key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")
    )


def build_facturx(
    xml: bytes,
    *,
    pdf: bytes | None = None,
    invoice: Invoice | None = None,
    profile: str | None = None,
    lang: Language = "fr",
    timestamp: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """A Factur-X PDF/A-3 for CII `xml`: wraps `pdf` when given, else renders the invoice page.

    The page is rendered, in French or English (`lang`), from `invoice` when given, else from
    the model read from `xml` (facturflow.read). `timestamp` dates the page and the Factur-X
    (default: the CII's issue date at 00:00:00 UTC): the same arguments give the same bytes.
    `limits` bounds the XML read (facturflow.Limits).
    """
    document = detect_bytes(xml, name="<xml>", limits=limits)
    if timestamp is None:
        timestamp = issue_timestamp(cii_issue_date(document))
    if pdf is None:
        from .render import render_invoice_pdf

        if invoice is None:
            from .reading import read

            invoice = read(document, check_codes=False)
        relationship = AF_RELATIONSHIPS[profile or facturx_profile(document)]
        pdf = render_invoice_pdf(
            invoice, lang=lang, timestamp=timestamp, xml_is_reference=relationship != "Data"
        )
    return embed_xml(
        pdf, xml, profile=profile, lang="fr-FR" if lang == "fr" else "en-GB", timestamp=timestamp,
        limits=limits,
    )


def extract_xml(pdf: bytes, *, source: str | None = None) -> bytes:
    """The invoice XML embedded in a Factur-X/ZUGFeRD PDF, byte for byte as it was embedded.

    Raises MalformedPDFError for an unreadable PDF and NoInvoiceInPDFError when no invoice XML
    (factur-x.xml, zugferd-invoice.xml, ZUGFeRD-invoice.xml, xrechnung.xml) is attached.
    """
    parts = read_pdf(pdf, source=source)
    found = parts.invoice_attachments()
    if not found:
        raise parts.no_invoice_error(source)
    if len({a.name for a in found}) > 1:
        raise NoInvoiceInPDFError(
            "several invoice XML attachments: " + ", ".join(a.name for a in found), source=source
        )
    return found[0].data


__all__ = [
    "AF_RELATIONSHIPS",
    "CONFORMANCE_LEVELS",
    "EPOCH",
    "FACTURX_PROFILES",
    "FACTURX_XML_NAME",
    "PdfMetadata",
    "build_facturx",
    "cii_issue_date",
    "embed_xml",
    "extract_xml",
    "issue_timestamp",
    "unembedded_fonts",
]
