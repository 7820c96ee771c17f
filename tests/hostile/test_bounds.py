"""Time and memory bounds, each case in a fresh child process whose peak RSS is measured.

Every answer must be a result or a documented InputError, with the child's peak resident memory
under 1 GB, for inputs up to the 100 MB size limit. Files are built on disk by the test.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from facturflow.xmlsafe import DEFAULT_MAX_BYTES

from .bounded import MEMORY_BOUND_MB, run_bounded
from .builders import MINIMAL_CII, pdf, pdf_with_attachments, stream, zeros_flate

pytestmark = pytest.mark.slow

INPUT_ERRORS = {
    "EmptyInputError",
    "InputTooLargeError",
    "MalformedXMLError",
    "MalformedPDFError",
    "NoInvoiceInPDFError",
    "NotAnInvoiceError",
    "InputError",
}


def text_heavy_invoice() -> bytes:
    """A well-formed CII just under the size limit: twelve 8 MB descriptions."""
    chunk = b"<ram:Description>" + b"x" * (8 << 20) + b"</ram:Description>"
    data = MINIMAL_CII.replace(b"<ram:Name>Conseil</ram:Name>", b"<ram:Name>Conseil</ram:Name>"
                               + chunk * 12)
    assert DEFAULT_MAX_BYTES - (8 << 20) < len(data) <= DEFAULT_MAX_BYTES
    return data


def utf16_invoice() -> bytes:
    """A UTF-16 CII near the limit: transcoding to UTF-8 must not double the peak."""
    chunk = "<ram:Description>" + "é" * (4 << 20) + "</ram:Description>"
    text = MINIMAL_CII.decode().replace("UTF-8", "UTF-16").replace(
        "<ram:Name>Conseil</ram:Name>", "<ram:Name>Conseil</ram:Name>" + chunk * 11
    )
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def over_the_size_limit() -> bytes:
    return MINIMAL_CII + b"<!--" + b" " * DEFAULT_MAX_BYTES + b"-->"


def dense_markup() -> bytes:
    """100 MB of empty elements: 25 million nodes, several GB as an lxml tree."""
    return b"<r>" + b"<a/>" * ((DEFAULT_MAX_BYTES - 16) // 4) + b"</r>"


def dense_attributes() -> bytes:
    return b"<r>" + b'<a b="" c="" d="" e=""/>' * ((DEFAULT_MAX_BYTES - 16) // 25) + b"</r>"


def markup_just_under_the_node_limit() -> bytes:
    """A CII with 990,000 empty notes: parsed, since under the markup limit."""
    return MINIMAL_CII.replace(
        b"<rsm:ExchangedDocument>", b"<rsm:ExchangedDocument>" + b"<ram:IncludedNote/>" * 990_000
    )


def one_huge_text_node() -> bytes:
    return MINIMAL_CII.replace(b"Conseil", b"x" * (90 << 20))


def deep_nesting() -> bytes:
    return b"<a>" * 400_000 + b"</a>" * 400_000


def laughs_at_scale() -> bytes:
    entities = "".join(
        f'<!ENTITY e{i} "{("&e" + str(i - 1) + ";") * 20}">' for i in range(1, 30)
    )
    return f'<!DOCTYPE r [<!ENTITY e0 "ha">{entities}]><r>&e29;</r>'.encode()


def pdf_bomb() -> bytes:
    """A 4 MB PDF whose invoice stream inflates to 4 GiB of zeros."""
    bomb = stream(zeros_flate(4 << 30), b"/Type /EmbeddedFile /Filter /FlateDecode ")
    return pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], extra={10: bomb})


def pdf_many_bombs() -> bytes:
    """Twenty attachments of 45 MB each once inflated: 900 MB in total."""
    bomb = stream(zeros_flate(45 << 20), b"/Type /EmbeddedFile /Filter /FlateDecode ")
    names = [(b"factur-x.xml", MINIMAL_CII)] + [(b"a%d.bin" % i, b"") for i in range(20)]
    return pdf_with_attachments(names, extra={12 + 2 * i: bomb for i in range(20)})


def pdf_near_the_limit() -> bytes:
    """A valid Factur-X carrying two 45 MB incompressible attachments beside the invoice."""
    scans = [(b"scan%d.bin" % i, os.urandom(45 << 20)) for i in range(2)]
    return pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII), *scans])


def pdf_garbled_near_the_limit() -> bytes:
    data = pdf_near_the_limit()
    data = re.sub(rb"startxref\n\d+", b"startxref\n12", data)
    return re.sub(rb"\d{10} 00000 n", b"0000000001 00000 n", data)


def pdf_million_objects() -> bytes:
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: b"<< /Type /Pages /Kids [] /Count 0 >>"}
    objects.update({i: b"[%d 0 R]" % (i + 1) for i in range(3, 1_000_000)})
    return re.sub(rb"startxref\n\d+", b"startxref\n12", pdf(objects))


def pdf_huge_page_tree() -> bytes:
    kids = b" ".join(b"3 0 R" for _ in range(90_000))
    extra = {
        2: b"<< /Type /Pages /Kids [" + kids + b"] /Count 2000000000 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    }
    return pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], extra=extra)


# name: (builder, calls, expected outcome: "result" or the error class name)
CASES: dict[str, tuple[Callable[[], bytes], tuple[str, ...], str]] = {
    "xml-at-size-limit": (text_heavy_invoice, ("detect", "validate"), "result"),
    "xml-utf16-near-limit": (utf16_invoice, ("detect", "validate"), "result"),
    "xml-over-size-limit": (over_the_size_limit, ("detect", "validate"), "InputTooLargeError"),
    "xml-dense-markup": (dense_markup, ("detect",), "InputTooLargeError"),
    "xml-dense-attributes": (dense_attributes, ("detect",), "InputTooLargeError"),
    "xml-under-node-limit": (markup_just_under_the_node_limit, ("detect",), "result"),
    "xml-huge-text-node": (one_huge_text_node, ("detect",), "InputTooLargeError"),
    "xml-deep-nesting": (deep_nesting, ("detect",), "InputTooLargeError"),
    "xml-laughs-at-scale": (laughs_at_scale, ("detect", "validate"), "MalformedXMLError"),
    "pdf-bomb-4gib": (pdf_bomb, ("detect", "validate"), "MalformedPDFError"),
    "pdf-many-bombs": (pdf_many_bombs, ("read_pdf",), "MalformedPDFError"),
    "pdf-near-size-limit": (pdf_near_the_limit, ("detect", "validate"), "result"),
    "pdf-garbled-near-limit": (pdf_garbled_near_the_limit, ("detect",), "any"),
    "pdf-million-objects": (pdf_million_objects, ("detect",), "MalformedPDFError"),
    "pdf-huge-page-tree": (pdf_huge_page_tree, ("detect",), "result"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bounded(name: str, tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    builder, calls, expected = CASES[name]
    path = tmp_path / (name + (".pdf" if name.startswith("pdf") else ".xml"))
    path.write_bytes(builder())
    for call in calls:
        run = run_bounded(call, path)
        answer = run.answer
        record_property(f"{call}_peak_mb", round(run.peak_mb))
        record_property(f"{call}_seconds", round(run.seconds, 1))
        print(f"{name} {call}: {answer.get('outcome')} {answer.get('error_type')} "
              f"peak {run.peak_mb:.0f} MB, {run.seconds:.1f} s")
        assert run.peak_mb < MEMORY_BOUND_MB, f"{call}: peak {run.peak_mb:.0f} MB"
        if answer["outcome"] == "report":  # validate: an unreadable input is a report
            outcome = answer["error_type"] or "result"
        else:
            outcome = answer.get("error_type") or "result"
        assert outcome == "result" or outcome in INPUT_ERRORS, answer
        if expected != "any":
            assert outcome == expected, answer
