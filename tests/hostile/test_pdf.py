"""Hostile and broken PDFs: each gives a documented error or a result with a warning."""

from __future__ import annotations

import re

import pytest

from facturflow.detection import detect
from facturflow.errors import InputError, MalformedPDFError, NoInvoiceInPDFError
from facturflow.pdf import MAX_ATTACHMENT_BYTES, MAX_PDF_OBJECTS, read_pdf
from facturflow.validation import validate

from .builders import (
    MINIMAL_CII,
    MINIMAL_UBL,
    object_stream_pdf,
    pdf,
    pdf_with_attachments,
    stream,
    xref_stream_pdf,
    zeros_flate,
)

CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
NO_PAGES = b"<< /Type /Pages /Kids [] /Count 0 >>"


def good() -> bytes:
    return pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], flate=True)


def test_the_builder_makes_a_readable_factur_x() -> None:
    document = detect(good())
    assert (document.container, document.syntax, document.attachment_name) == (
        "pdf", "cii", "factur-x.xml"
    )


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1, 20 / 1000])
def test_truncated(keep: float) -> None:
    data = good()
    with pytest.raises(InputError):
        detect(data[: int(len(data) * keep)])


def test_header_only() -> None:
    with pytest.raises(MalformedPDFError):
        detect(b"%PDF-1.7\n")


def test_garbled_cross_reference_is_rebuilt_or_refused() -> None:
    data = good()
    garbled = re.sub(rb"\d{10} 00000 n", b"9999999999 00000 n", data)
    assert garbled != data
    try:
        document = detect(garbled)
    except InputError:
        return
    assert document.syntax == "cii"  # pypdf rebuilt the table from the objects themselves


def test_startxref_pointing_nowhere() -> None:
    data = re.sub(rb"startxref\n\d+", b"startxref\n999999999", good())
    try:
        document = detect(data)
    except InputError as exc:
        assert isinstance(exc, MalformedPDFError)
    else:
        assert document.syntax == "cii"


def test_encrypted() -> None:
    data = pdf(
        {
            1: CATALOG,
            2: NO_PAGES,
            5: b"<< /Filter /Standard /V 1 /R 2 /O (" + b"x" * 32 + b") /U (" + b"x" * 32
            + b") /P -4 >>",
        },
        trailer_extra=b"/Encrypt 5 0 R /ID [(a) (a)] ",
    )
    with pytest.raises(MalformedPDFError, match="encrypted"):
        detect(data)


def test_no_attachments() -> None:
    with pytest.raises(NoInvoiceInPDFError, match="embedded files: none"):
        detect(pdf({1: CATALOG, 2: NO_PAGES}))


def test_only_unrelated_attachments_are_named() -> None:
    data = pdf_with_attachments([(b"photo.jpg", b"\xff\xd8\xff"), (b"notes.txt", b"hello")])
    with pytest.raises(NoInvoiceInPDFError, match=r"photo\.jpg, notes\.txt"):
        detect(data)


def test_order_x_is_named() -> None:
    with pytest.raises(NoInvoiceInPDFError, match="Order-X"):
        detect(pdf_with_attachments([(b"order-x.xml", MINIMAL_CII)]))


def test_two_different_invoice_xmls_give_a_warning() -> None:
    data = pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII), (b"xrechnung.xml", MINIMAL_UBL)])
    document = detect(data)
    assert document.attachment_name == "factur-x.xml"
    assert any("2 different invoice XMLs" in w for w in document.warnings)
    assert any("2 different invoice XMLs" in w for w in validate(data).warnings)


def test_two_identical_invoice_xmls_are_fine() -> None:
    data = pdf_with_attachments(
        [(b"factur-x.xml", MINIMAL_CII), (b"ZUGFeRD-invoice.xml", MINIMAL_CII)]
    )
    assert detect(data).warnings == ()


def test_two_different_files_under_the_invoice_name_are_refused() -> None:
    data = pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII), (b"factur-x.xml", MINIMAL_UBL)])
    with pytest.raises(NoInvoiceInPDFError, match=r"both named 'factur-x\.xml'"):
        detect(data)


def test_broken_invoice_attachment_is_the_answer() -> None:
    data = pdf_with_attachments([(b"factur-x.xml", b"<rsm:Cross")])
    with pytest.raises(InputError) as caught:
        detect(data)
    assert caught.value.source == "<bytes>!factur-x.xml"


def _bomb_pdf(inflated: int, *, where: str) -> bytes:
    bomb = stream(zeros_flate(inflated), b"/Type /EmbeddedFile /Filter /FlateDecode ")
    if where == "invoice":
        return pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], extra={10: bomb})
    if where == "other":
        return pdf_with_attachments(
            [(b"factur-x.xml", MINIMAL_CII), (b"photo.bin", b"")], extra={12: bomb}
        )
    catalog = (
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> /AF [11 0 R] "
        b"/Metadata 9 0 R >>"
    )
    return pdf_with_attachments(
        [(b"factur-x.xml", MINIMAL_CII)],
        extra={1: catalog, 9: bomb.replace(b"/EmbeddedFile", b"/Metadata /Subtype /XML")},
    )


@pytest.mark.parametrize("where", ["invoice", "other", "xmp"])
def test_decompression_bomb_is_refused(where: str) -> None:
    data = _bomb_pdf(1 << 30, where=where)  # 1 GiB of zeros in about 1 MB
    assert len(data) < 2 << 20
    with pytest.raises(MalformedPDFError, match="limit"):
        read_pdf(data)


def test_many_attachments_each_under_the_limit_are_refused_in_total() -> None:
    count = 5
    attachments = [(b"factur-x.xml", MINIMAL_CII)] + [(b"a%d.bin" % i, b"") for i in range(count)]
    bomb = stream(zeros_flate(40 << 20), b"/Type /EmbeddedFile /Filter /FlateDecode ")
    data = pdf_with_attachments(attachments, extra={12 + 2 * i: bomb for i in range(count)})
    assert MAX_ATTACHMENT_BYTES > 40 << 20
    with pytest.raises(MalformedPDFError, match="in total"):
        read_pdf(data)


def test_corrupt_zlib_stream_is_refused() -> None:
    junk = b"\x78\x9c" + bytes(range(256)) * 2000
    data = pdf_with_attachments(
        [(b"factur-x.xml", MINIMAL_CII)],
        extra={10: stream(junk, b"/Type /EmbeddedFile /Filter /FlateDecode ")},
    )
    with pytest.raises(InputError):
        detect(data)


def test_huge_page_count_is_never_walked() -> None:
    pages = b"<< /Type /Pages /Kids [2 0 R 2 0 R] /Count 999999999 >>"
    data = pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], extra={2: pages})
    assert detect(data).syntax == "cii"


def test_kids_loop_in_the_page_tree() -> None:
    extra = {
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 3 0 R] /Count 1 >>",
    }
    data = pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], extra=extra)
    assert detect(data).syntax == "cii"


def test_kids_loop_in_the_embedded_files_tree() -> None:
    catalog = b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> >>"
    data = pdf(
        {1: catalog, 2: NO_PAGES, 4: b"<< /Kids [5 0 R] >>", 5: b"<< /Kids [4 0 R 5 0 R] >>"}
    )
    with pytest.raises(NoInvoiceInPDFError):
        detect(data)


def test_huge_embedded_files_tree_is_bounded() -> None:
    # 200 nodes of 100 leaves each, all pointing at one file spec: walked within a budget.
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 4 0 R >> >>",
               2: NO_PAGES, 7: b"<< /Type /Filespec /F (x.bin) >>"}
    kids = b" ".join(b"%d 0 R" % (100 + i) for i in range(200))
    objects[4] = b"<< /Kids [" + kids + b"] >>"
    leaves = b" ".join(b"(n%d) 7 0 R" % i for i in range(100))
    for i in range(200):
        objects[100 + i] = b"<< /Names [" + leaves + b"] >>"
    with pytest.raises(InputError):
        detect(pdf(objects))


@pytest.mark.parametrize(
    "catalog",
    [
        b"<< /Type /Catalog /Pages 2 0 R /Names 6 0 R /AF 6 0 R >>",
        b"<< /Type /Catalog /Pages 2 0 R /AF 8 0 R >>",
        b"<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 8 0 R >> >>",
    ],
    ids=["reference-cycle", "array-containing-itself", "name-tree-is-self-array"],
)
def test_cyclic_object_references(catalog: bytes) -> None:
    data = pdf({1: catalog, 2: NO_PAGES, 6: b"7 0 R", 7: b"6 0 R", 8: b"[8 0 R 8 0 R]"})
    with pytest.raises(InputError):
        detect(data)


def test_root_is_not_a_dictionary() -> None:
    with pytest.raises(MalformedPDFError, match="catalogue"):
        detect(pdf({1: b"[1 2 3]", 2: NO_PAGES}))


def test_unsupported_filter_on_the_invoice() -> None:
    data = pdf_with_attachments(
        [(b"factur-x.xml", MINIMAL_CII)],
        extra={10: stream(b"xx", b"/Type /EmbeddedFile /Filter /JBIG2Decode ")},
    )
    with pytest.raises(InputError):
        detect(data)


def test_pypdf_messages_are_clipped() -> None:
    long_name = b"n" * 5000 + b".bin"
    data = pdf_with_attachments([(long_name, b"x")])
    with pytest.raises(NoInvoiceInPDFError) as caught:
        detect(data)
    assert len(caught.value.message) < 500


def test_not_a_pdf_after_the_header() -> None:
    with pytest.raises(MalformedPDFError):
        detect(b"%PDF-1.7\n" + bytes(range(256)) * 100)


def test_too_many_objects_are_refused_before_pypdf_walks_them() -> None:
    objects = {1: CATALOG, 2: NO_PAGES}
    objects.update({i: b"[%d 0 R]" % (i + 1) for i in range(3, MAX_PDF_OBJECTS + 10)})
    with pytest.raises(MalformedPDFError, match="objects exceed the limit"):
        read_pdf(pdf(objects))
    broken = re.sub(rb"startxref\n\d+", b"startxref\n12", pdf(objects))
    with pytest.raises(MalformedPDFError, match="objects exceed the limit"):
        read_pdf(broken)


@pytest.mark.parametrize(
    "filters", [b"[/FlateDecode /FlateDecode]", b"[/FlateDecode /FlateDecode /FlateDecode]"]
)
def test_chained_filter_bomb_is_refused(filters: bytes) -> None:
    """Zeros compressed twice: each stage is small, the last one inflates to 1 GiB."""
    import zlib

    payload = zeros_flate(1 << 30)
    for _ in range(filters.count(b"/FlateDecode") - 1):
        payload = zlib.compress(payload, 9)
    bomb = stream(payload, b"/Type /EmbeddedFile /Filter " + filters + b" ")
    data = pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], extra={10: bomb})
    assert len(data) < 1 << 20
    with pytest.raises(MalformedPDFError, match="limit"):
        read_pdf(data)


def test_structure_builders_make_readable_pdfs() -> None:
    read_pdf(xref_stream_pdf(1000))
    read_pdf(xref_stream_pdf(1000, sections=3))
    read_pdf(object_stream_pdf(1000))


def test_outline_items_are_not_counted_as_cross_reference_sections() -> None:
    """Bookmarks link to each other with /Prev references, like xref sections with offsets."""
    import io

    from pypdf import PdfWriter

    from facturflow.pdf import MAX_XREF_SECTIONS, check_pdf_structure

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    for n in range(MAX_XREF_SECTIONS + 4):
        writer.add_outline_item(title=f"chapter {n}", page_number=0)
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().count(b"/Prev") > MAX_XREF_SECTIONS
    check_pdf_structure(out.getvalue())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(xref_stream_pdf(1_000_000), id="xref-stream-1M-entries-in-a-few-KB"),
        pytest.param(xref_stream_pdf(300_000), id="xref-stream-300k-entries-under-1MB"),
        pytest.param(xref_stream_pdf(50_000, sections=40), id="40-chained-xref-sections"),
        pytest.param(object_stream_pdf(200_000), id="object-stream-200k-members"),
    ],
)
def test_structure_bombs_are_refused(data: bytes) -> None:
    """Tiny files whose structure would keep pypdf busy for minutes."""
    assert len(data) < 2 << 20
    with pytest.raises(MalformedPDFError, match=r"(?i)limit"):
        read_pdf(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(xref_stream_pdf(300_000), id="xref-stream-300k-entries-under-1MB"),
        pytest.param(object_stream_pdf(200_000), id="object-stream-200k-members"),
    ],
)
def test_a_visual_pdf_to_wrap_gets_the_same_structure_limits(data: bytes) -> None:
    """The PDF build_facturx wraps comes from the user too: refused before pypdf is kept busy."""
    from facturflow.facturx import embed_xml, unembedded_fonts

    with pytest.raises(MalformedPDFError, match=r"(?i)limit"):
        embed_xml(data, MINIMAL_CII)
    with pytest.raises(MalformedPDFError, match=r"(?i)limit"):
        unembedded_fonts(data)
