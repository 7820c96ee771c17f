"""PDF layer: the Factur-X / ZUGFeRD container rules a receiver checks before reading the XML.

Rule ids (facturflow's own, since the Factur-X specification states these rules in prose):

    FX-PDF-NAME         the invoice XML attachment has a standard name matching the XML
    FX-PDF-MIME         its MIME type (embedded file /Subtype) is text/xml
    FX-PDF-AFREL        its file spec has an AFRelationship of Data, Source or Alternative
    FX-PDF-AF           it is listed in the catalogue's /AF array (PDF/A-3 associated file)
    FX-PDF-MULTI        exactly one invoice XML is embedded
    FX-PDF-XMP          the document has readable XMP metadata
    FX-PDF-PDFA         the XMP identifies the file as PDF/A-3 (pdfaid:part = 3)
    FX-PDF-INTENT       the catalogue has a PDF/A output intent (GTS_PDFA1) for colour
    FX-PDF-XMP-FX       the XMP carries the Factur-X (or ZUGFeRD) extension schema
    FX-PDF-XMP-TYPE     DocumentType is INVOICE
    FX-PDF-XMP-FILE     DocumentFileName names the embedded XML
    FX-PDF-XMP-VERSION  Version is present
    FX-PDF-XMP-LEVEL    ConformanceLevel agrees with the profile the XML declares
    PDF-XREF            the cross-reference table is intact: a strict reader (qpdf) need not
                        rebuild it (pypdf reads such a file leniently; PDF/A forbids it)
    PDF-STRUCTURE       the other structural faults qpdf finds while opening the file and
                        resolving every object (objects not where the table says, bad syntax)

Not checked (a full PDF/A-3 validator such as veraPDF is needed): fonts (embedding, widths,
glyphs), colour spaces and output-intent profiles beyond the presence of GTS_PDFA1, transparency,
annotations and actions, page content streams, and XMP beyond the properties above.
"""

from __future__ import annotations

from lxml import etree

from ..detection import Document
from ..errors import InputError
from ..xmlsafe import Limits, parse_xml
from .report import Finding, Location, Severity

PDFAID = "http://www.aiim.org/pdfa/ns/id/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
FX_NAMESPACES = {
    "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#": "factur-x",
    "urn:zugferd:pdfa:CrossIndustryDocument:invoice:2p0#": "zugferd2",
    "urn:ferd:pdfa:CrossIndustryDocument:invoice:1p0#": "zugferd1",
}
# ConformanceLevel values accepted for each detected profile.
LEVELS: dict[str, set[str]] = {
    "minimum": {"MINIMUM"},
    "basicwl": {"BASIC WL"},
    "basic": {"BASIC"},
    "en16931": {"EN 16931", "EN16931", "COMFORT"},
    "extended": {"EXTENDED"},
    "extended-ctc-fr": {"EXTENDED"},
    "xrechnung": {"XRECHNUNG"},
}
ZUGFERD1_LEVELS = {"BASIC", "COMFORT", "EXTENDED"}
_RELATIONSHIPS = {"Data", "Source", "Alternative"}
_XMP_LIMITS = Limits(max_bytes=10 * 1024 * 1024, max_depth=64)
_STRUCTURE_ARTEFACT = "PDF structure (qpdf)"
# qpdf's wording when the cross-reference table was unusable and had to be rebuilt.
_XREF_WORDS = ("xref", "cross-reference", "file is damaged", "expected n n obj", "trailer")


def _finding(
    rule: str, message: str, severity: Severity = "fatal", where: str | None = None
) -> Finding:
    return Finding(
        layer="pdf",
        rule=rule,
        severity=severity,
        message=message,
        location=Location(xpath=where),
        artefact="Factur-X 1.0 PDF rules",
    )


def _xmp_values(tree: etree._ElementTree, namespace: str) -> dict[str, str]:
    """Properties of one XMP namespace, whether written as attributes or as child elements."""
    values: dict[str, str] = {}
    for description in tree.iter(f"{{{RDF}}}Description"):
        for key, value in description.attrib.items():
            qname = etree.QName(key)
            if qname.namespace == namespace:
                values.setdefault(qname.localname, str(value).strip())
        for child in description:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            if qname.namespace == namespace:
                values.setdefault(qname.localname, "".join(map(str, child.itertext())).strip())
    return values


def structure_findings(problems: tuple[str, ...]) -> list[Finding]:
    """Fatal findings for the structural faults qpdf found (see facturflow.pdf)."""
    xref = [p for p in problems if any(word in p.lower() for word in _XREF_WORDS)]
    other = [p for p in problems if p not in xref]
    findings = []
    if xref:
        findings.append(
            Finding(
                layer="pdf",
                rule="PDF-XREF",
                severity="fatal",
                message="the cross-reference table is broken: a strict PDF reader has to "
                "rebuild it, which PDF/A forbids (qpdf: " + "; ".join(xref) + ")",
                artefact=_STRUCTURE_ARTEFACT,
            )
        )
    if other:
        findings.append(
            Finding(
                layer="pdf",
                rule="PDF-STRUCTURE",
                severity="fatal",
                message="the PDF has structural faults a strict reader reports (qpdf: "
                + "; ".join(other)
                + ")",
                artefact=_STRUCTURE_ARTEFACT,
            )
        )
    return findings


def check(document: Document) -> list[Finding]:
    """Check the PDF container of a Factur-X / ZUGFeRD document (no-op for plain XML)."""
    parts = document.pdf
    if parts is None or document.attachment_name is None:
        return []
    findings: list[Finding] = structure_findings(parts.structure_problems)
    name = document.attachment_name
    attachment = next(a for a in parts.attachments if a.name == name)
    zugferd1 = document.syntax == "zugferd1"

    standard = (
        {"ZUGFeRD-invoice.xml"}
        if zugferd1
        else {"factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml"}
    )
    if name not in standard:
        findings.append(
            _finding(
                "FX-PDF-NAME",
                f"the invoice XML is embedded as {name!r}; the specification requires "
                + " or ".join(sorted(standard)),
            )
        )
    others = [
        a for a in parts.invoice_attachments() if a.name != name and a.data != attachment.data
    ]
    if others:
        findings.append(
            _finding(
                "FX-PDF-MULTI",
                "several different invoice XMLs are embedded ("
                + ", ".join([name, *(a.name for a in others)])
                + f"); {name} was validated, but a receiver may read another one",
            )
        )
    if attachment.mime_type is None:
        findings.append(
            _finding(
                "FX-PDF-MIME",
                "the embedded file has no MIME type (/Subtype); expected text/xml",
                "warning",
            )
        )
    elif attachment.mime_type.lower() != "text/xml":
        findings.append(
            _finding(
                "FX-PDF-MIME",
                f"the embedded file's MIME type is {attachment.mime_type!r}; expected text/xml",
                "warning",
            )
        )
    if attachment.af_relationship is None:
        findings.append(
            _finding(
                "FX-PDF-AFREL",
                "the file specification has no /AFRelationship (Data, Source or Alternative)",
                "warning" if zugferd1 else "fatal",
            )
        )
    elif attachment.af_relationship not in _RELATIONSHIPS:
        findings.append(
            _finding(
                "FX-PDF-AFREL",
                f"/AFRelationship is {attachment.af_relationship!r}; "
                "expected Data, Source or Alternative",
            )
        )
    if not attachment.in_af_array:
        findings.append(
            _finding(
                "FX-PDF-AF",
                "the invoice XML is not listed in the catalogue's /AF array "
                "(PDF/A-3 associated file)",
                "warning" if zugferd1 else "fatal",
            )
        )

    if "GTS_PDFA1" not in parts.output_intents:
        findings.append(
            _finding(
                "FX-PDF-INTENT",
                "the catalogue has no PDF/A output intent (/OutputIntents with /S /GTS_PDFA1); "
                "PDF/A-3 requires one as soon as a page uses a device colour space",
                # Only a full PDF/A validator can tell whether the pages need one; 70 published
                # "valid" samples have none, so this is a warning, not a rejection.
                "warning",
            )
        )
    if parts.xmp is None:
        findings.append(_finding("FX-PDF-XMP", "the PDF has no XMP metadata stream"))
        return findings
    try:
        xmp = parse_xml(parts.xmp, source="XMP metadata", limits=_XMP_LIMITS)
    except InputError as exc:
        findings.append(_finding("FX-PDF-XMP", f"the XMP metadata cannot be read: {exc.message}"))
        return findings

    pdfa = _xmp_values(xmp, PDFAID)
    if pdfa.get("part") != "3":
        found = (
            f"PDF/A-{pdfa['part']}{pdfa.get('conformance', '')}"
            if "part" in pdfa
            else "no pdfaid:part"
        )
        findings.append(_finding("FX-PDF-PDFA", f"the XMP does not identify PDF/A-3 ({found})"))

    schema = None
    values: dict[str, str] = {}
    for namespace, flavour in FX_NAMESPACES.items():
        values = _xmp_values(xmp, namespace)
        if values:
            schema = flavour
            break
    if schema is None:
        findings.append(
            _finding(
                "FX-PDF-XMP-FX",
                "the XMP lacks the Factur-X extension schema "
                "(DocumentType, DocumentFileName, Version, ConformanceLevel)",
            )
        )
        return findings
    if values.get("DocumentType", "").upper() != "INVOICE":
        findings.append(
            _finding(
                "FX-PDF-XMP-TYPE",
                f"XMP DocumentType is {values.get('DocumentType')!r}; expected 'INVOICE'",
            )
        )
    if values.get("DocumentFileName") != name:
        findings.append(
            _finding(
                "FX-PDF-XMP-FILE",
                f"XMP DocumentFileName is {values.get('DocumentFileName')!r} "
                f"but the invoice XML is embedded as {name!r}",
            )
        )
    if not values.get("Version"):
        findings.append(_finding("FX-PDF-XMP-VERSION", "XMP Version is missing"))
    level = values.get("ConformanceLevel", "")
    allowed = ZUGFERD1_LEVELS if zugferd1 else LEVELS.get(document.profile)
    if not level:
        findings.append(_finding("FX-PDF-XMP-LEVEL", "XMP ConformanceLevel is missing"))
    elif allowed is None:
        if level.upper() not in set().union(*LEVELS.values()) | ZUGFERD1_LEVELS:
            findings.append(
                _finding(
                    "FX-PDF-XMP-LEVEL", f"XMP ConformanceLevel {level!r} is not a Factur-X level"
                )
            )
    elif level.upper() not in allowed:
        findings.append(
            _finding(
                "FX-PDF-XMP-LEVEL",
                f"XMP ConformanceLevel is {level!r} but the XML declares "
                f"the {document.profile} profile "
                f"(expected {' or '.join(sorted(allowed))})",
            )
        )
    return findings
