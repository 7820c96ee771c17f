"""Factur-X PDF/A-3 embedding and extraction (facturflow.facturx), independent of the model."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from convert_helpers import CII_EN16931, FACTURX_PDF, FIXED_TIME, qpdf_check
from lxml import etree
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject

from facturflow.detection import detect
from facturflow.errors import ConversionError, MalformedPDFError, NoInvoiceInPDFError
from facturflow.facturx import (
    AF_RELATIONSHIPS,
    CONFORMANCE_LEVELS,
    PdfMetadata,
    embed_xml,
    extract_xml,
    unembedded_fonts,
)
from facturflow.pdf import read_pdf

FX = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "fx": FX,
    "dc": "http://purl.org/dc/elements/1.1/",
    "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
}
GUIDELINES = {
    "minimum": "urn:factur-x.eu:1p0:minimum",
    "basicwl": "urn:factur-x.eu:1p0:basicwl",
    "basic": "urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic",
    "en16931": "urn:cen.eu:en16931:2017",
    "extended": "urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended",
    "extended-ctc-fr": "urn:cen.eu:en16931:2017#conformant#urn.cpro.gouv.fr:1p0:extended-ctc-fr",
    "xrechnung": "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
}


def with_guideline(xml: bytes, profile: str) -> bytes:
    return xml.replace(b"<ram:ID>urn:cen.eu:en16931:2017</ram:ID>",
                       f"<ram:ID>{GUIDELINES[profile]}</ram:ID>".encode(), 1)


def xmp_tree(pdf: bytes) -> etree._Element:
    parts = read_pdf(pdf)
    assert parts.xmp is not None
    start = parts.xmp.index(b"<x:xmpmeta")
    end = parts.xmp.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    return etree.fromstring(parts.xmp[start:end])


def test_extract_gives_back_exactly_the_embedded_cii(plain_pdf: bytes, cii_bytes: bytes) -> None:
    out = embed_xml(plain_pdf, cii_bytes, timestamp=FIXED_TIME)
    assert extract_xml(out) == cii_bytes


def test_the_xml_is_an_associated_file_in_the_name_tree_and_af_array(
    plain_pdf: bytes, cii_bytes: bytes
) -> None:
    parts = read_pdf(embed_xml(plain_pdf, cii_bytes, timestamp=FIXED_TIME))
    (attachment,) = parts.attachments
    assert attachment.name == "factur-x.xml"
    assert attachment.mime_type == "text/xml"
    assert attachment.af_relationship == "Alternative"
    assert attachment.in_af_array and attachment.in_name_tree


@pytest.mark.parametrize("profile", sorted(CONFORMANCE_LEVELS))
def test_af_relationship_and_xmp_level_follow_the_profile(
    plain_pdf: bytes, cii_bytes: bytes, profile: str
) -> None:
    out = embed_xml(plain_pdf, with_guideline(cii_bytes, profile), timestamp=FIXED_TIME)
    (attachment,) = read_pdf(out).attachments
    expected = "Data" if profile in ("minimum", "basicwl") else "Alternative"
    assert attachment.af_relationship == expected == AF_RELATIONSHIPS[profile]
    xmp = xmp_tree(out)
    assert xmp.findtext(".//fx:ConformanceLevel", namespaces=NS) == CONFORMANCE_LEVELS[profile]


def test_xmp_declares_pdfa3b_and_the_facturx_extension_schema(
    plain_pdf: bytes, cii_bytes: bytes
) -> None:
    xmp = xmp_tree(embed_xml(plain_pdf, cii_bytes, timestamp=FIXED_TIME))
    assert xmp.findtext(".//pdfaid:part", namespaces=NS) == "3"
    assert xmp.findtext(".//pdfaid:conformance", namespaces=NS) == "B"
    assert xmp.findtext(".//fx:DocumentType", namespaces=NS) == "INVOICE"
    assert xmp.findtext(".//fx:DocumentFileName", namespaces=NS) == "factur-x.xml"
    assert xmp.findtext(".//fx:Version", namespaces=NS) == "1.0"
    assert xmp.findtext(".//fx:ConformanceLevel", namespaces=NS) == "EN 16931"
    assert xmp.findtext(".//pdfaSchema:namespaceURI", namespaces=NS) == FX
    assert xmp.findtext(".//xmp:CreateDate", namespaces=NS) == "2026-03-10T09:30:00+00:00"


def test_info_dictionary_agrees_with_the_xmp(plain_pdf: bytes, cii_bytes: bytes) -> None:
    out = embed_xml(plain_pdf, cii_bytes, timestamp=FIXED_TIME,
                    metadata=PdfMetadata(title="Facture F2026-0042", author="Vitraux Éléonore",
                                         subject="Factur-X"))
    info = PdfReader(io.BytesIO(out)).metadata
    assert info is not None
    xmp = xmp_tree(out)
    assert info["/Title"] == xmp.findtext(".//dc:title//rdf:li", namespaces=NS)
    assert info["/Author"] == xmp.findtext(".//dc:creator//rdf:li", namespaces=NS)
    assert info["/Subject"] == xmp.findtext(".//dc:description//rdf:li", namespaces=NS)
    assert info["/CreationDate"] == info["/ModDate"] == "D:20260310093000+00'00'"


def test_metadata_is_drawn_from_the_cii_by_default(plain_pdf: bytes, cii_bytes: bytes) -> None:
    info = PdfReader(io.BytesIO(embed_xml(plain_pdf, cii_bytes))).metadata
    assert info is not None
    assert "F2026-0042" in str(info["/Title"])
    assert "2026-03-10" in str(info["/Subject"])


def test_an_srgb_output_intent_is_added_when_missing(plain_pdf: bytes, cii_bytes: bytes) -> None:
    reader = PdfReader(io.BytesIO(embed_xml(plain_pdf, cii_bytes)))
    intents = reader.trailer["/Root"]["/OutputIntents"]
    assert isinstance(intents, ArrayObject) and len(intents) == 1
    intent = intents[0].get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    profile = intent["/DestOutputProfile"].get_object()
    assert profile["/N"] == 3
    assert profile.get_data()[36:40] == b"acsp"  # an ICC profile signature


def test_same_inputs_and_timestamp_give_the_same_bytes(plain_pdf: bytes, cii_bytes: bytes) -> None:
    first = embed_xml(plain_pdf, cii_bytes, timestamp=FIXED_TIME)
    assert embed_xml(plain_pdf, cii_bytes, timestamp=FIXED_TIME) == first
    assert PdfReader(io.BytesIO(first)).trailer["/ID"]  # PDF/A requires a file identifier


def test_rewrapping_replaces_the_invoice_and_keeps_other_attachments(
    plain_pdf: bytes, cii_bytes: bytes
) -> None:
    writer = PdfWriter(clone_from=io.BytesIO(plain_pdf))
    writer.add_attachment("terms.txt", b"conditions generales")
    writer.add_attachment("zugferd-invoice.xml", b"<old/>")
    buffer = io.BytesIO()
    writer.write(buffer)
    once = embed_xml(buffer.getvalue(), cii_bytes, timestamp=FIXED_TIME)
    newer = cii_bytes.replace(b"F2026-0042", b"F2026-0043")
    twice = embed_xml(once, newer, timestamp=FIXED_TIME)
    names = sorted(a.name for a in read_pdf(twice).attachments)
    assert names == ["factur-x.xml", "terms.txt"]
    assert extract_xml(twice) == newer
    root = PdfReader(io.BytesIO(twice)).trailer["/Root"]
    assert len(root["/AF"]) == 1  # only factur-x.xml is an associated file


def test_wrapping_a_factur_x_pdf_keeps_its_pages(cii_bytes: bytes) -> None:
    source = FACTURX_PDF.read_bytes()
    out = embed_xml(source, cii_bytes, timestamp=FIXED_TIME)
    assert len(PdfReader(io.BytesIO(out)).pages) == len(PdfReader(io.BytesIO(source)).pages)
    assert detect(out).attachment_name == "factur-x.xml"


def test_output_passes_qpdf_check(plain_pdf: bytes, cii_bytes: bytes, tmp_path: Path) -> None:
    result = qpdf_check(embed_xml(plain_pdf, cii_bytes), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors" in result.stdout


def test_ubl_cannot_be_embedded(plain_pdf: bytes) -> None:
    ubl = (CII_EN16931.parent / "fr-invoice-ubl-en16931.xml").read_bytes()
    with pytest.raises(ConversionError, match="embeds CII"):
        embed_xml(plain_pdf, ubl)


def test_a_cii_of_no_factur_x_profile_is_refused(plain_pdf: bytes, cii_bytes: bytes) -> None:
    peppol = cii_bytes.replace(
        b"<ram:ID>urn:cen.eu:en16931:2017</ram:ID>",
        b"<ram:ID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
        b"</ram:ID>", 1)
    with pytest.raises(ConversionError, match="not a Factur-X profile"):
        embed_xml(plain_pdf, peppol)


def test_an_encrypted_pdf_is_refused(plain_pdf: bytes, cii_bytes: bytes) -> None:
    writer = PdfWriter(clone_from=io.BytesIO(plain_pdf))
    writer.encrypt("secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(MalformedPDFError, match="encrypted"):
        embed_xml(buffer.getvalue(), cii_bytes)


def test_not_a_pdf_is_refused(cii_bytes: bytes) -> None:
    with pytest.raises(MalformedPDFError):
        embed_xml(b"hello", cii_bytes)


def test_extract_from_a_pdf_without_invoice_fails(plain_pdf: bytes) -> None:
    with pytest.raises(NoInvoiceInPDFError):
        extract_xml(plain_pdf)


def test_the_catalogue_names_the_document_language(plain_pdf: bytes, cii_bytes: bytes) -> None:
    root = PdfReader(io.BytesIO(embed_xml(plain_pdf, cii_bytes, lang="fr-FR"))).trailer["/Root"]
    assert isinstance(root, DictionaryObject)
    assert root["/Lang"] == "fr-FR"


def _pdf_with_core_font() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)  # a standard-14 font: referenced, never embedded
    pdf.cell(text="Facture")
    return bytes(pdf.output())


def test_fonts_a_visual_pdf_does_not_embed_are_named() -> None:
    assert unembedded_fonts(_pdf_with_core_font()) == ["Helvetica"]


def test_the_rendered_page_embeds_every_font() -> None:
    from sample_invoice import sample_invoice

    from facturflow.render import render_invoice_pdf

    assert unembedded_fonts(render_invoice_pdf(sample_invoice())) == []


def test_a_rendered_factur_x_is_reproducible_for_a_fixed_timestamp(cii_bytes: bytes) -> None:
    from sample_invoice import sample_invoice

    from facturflow.facturx import build_facturx

    invoice = sample_invoice()
    first = build_facturx(cii_bytes, invoice=invoice, timestamp=FIXED_TIME)
    assert build_facturx(cii_bytes, invoice=invoice, timestamp=FIXED_TIME) == first


def test_a_rendered_factur_x_has_the_bytes_it_has_when_built_alone_in_a_fresh_process(
    cii_bytes: bytes, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from sample_invoice import sample_invoice

    from facturflow.facturx import build_facturx

    # Another invoice first (other glyphs, several pages): the per-process font and subset
    # caches it fills must not change the next document's bytes.
    build_facturx(cii_bytes, invoice=sample_invoice(30), timestamp=FIXED_TIME)
    in_process = build_facturx(cii_bytes, timestamp=FIXED_TIME)
    out = tmp_path / "alone.pdf"
    tests = str(Path(__file__).parent)
    code = (
        f"import sys; from pathlib import Path; sys.path.insert(0, {tests!r})\n"
        "from convert_helpers import CII_EN16931, FIXED_TIME\n"
        "from facturflow.facturx import build_facturx\n"
        f"Path({str(out)!r}).write_bytes(build_facturx(CII_EN16931.read_bytes(), "
        "timestamp=FIXED_TIME))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert out.read_bytes() == in_process
    assert extract_xml(in_process) == cii_bytes
    result = qpdf_check(in_process, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
