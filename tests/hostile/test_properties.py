"""Property tests: mutated versions of valid invoices (truncations, byte flips, inserted
DOCTYPEs, swapped namespaces, re-encodings) through detect, validate, read and the parsers.
Each returns a result or raises a documented InputError; never anything else."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from facturflow.detection import Document, detect
from facturflow.errors import InputError, MalformedPDFError, NoInvoiceInPDFError
from facturflow.model.invoice import Invoice
from facturflow.pdf import PdfParts, read_pdf
from facturflow.reading import read
from facturflow.validation import schematron, validate
from facturflow.validation.report import Report
from facturflow.xmlsafe import MAX_ECHO, TRUNCATED, parse_xml

from .builders import FIXTURES, MINIMAL_CII, pdf_with_attachments, seed_invoices

# FACTURFLOW_HOSTILE_SCALE=20 multiplies the example counts for a deeper local run.
SCALE = int(os.environ.get("FACTURFLOW_HOSTILE_SCALE", "1"))


def bounded(max_examples: int) -> settings:
    """Modest counts for a 2-core CI; no deadline, since one Saxon call can take a second.

    Whether examples are derandomized is the profile's choice (tests/conftest.py), not set here:
    a per-test value would override `make test`'s and `make test-random`'s profiles.
    """
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


SEEDS: dict[str, bytes] = {
    **seed_invoices(),
    "minimal-cii.pdf": pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)], flate=True),
    "minimal-cii-raw.pdf": pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)]),
}
SEED_NAMES = sorted(SEEDS)
INPUT_ERROR_NAMES = {InputError.__name__, *(cls.__name__ for cls in InputError.__subclasses__())}

NAMESPACES = [
    b"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    b"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    b"urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    b"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    b"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    b"urn:ferd:CrossIndustryDocument:invoice:1p0",
    b"urn:un:unece:uncefact:data:SCRDMCCBDACIOMessageStructure:100",
    b"http://www.w3.org/2001/XInclude",
    b"",
]

DOCTYPES = [
    b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>',
    b'<!DOCTYPE r SYSTEM "file:///etc/passwd">',
    b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>',
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    b"<!doctype html>",
    b"<!DOCTYPE",
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(SEED_NAMES))
    data = SEEDS[name]
    kind = draw(
        st.sampled_from(
            ["truncate", "flip", "doctype", "namespace", "splice", "reencode", "insert-entity"]
        )
    )
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "flip":
        buffer = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            buffer[draw(st.integers(0, len(buffer) - 1))] = draw(st.integers(0, 255))
        data = bytes(buffer)
    elif kind == "doctype":
        doctype = draw(st.sampled_from(DOCTYPES))
        at = data.find(b"?>") + 2 if data.startswith(b"<?xml") else 0
        at = draw(st.sampled_from([0, at, data.find(b"<", at + 1) if at else 0]))
        data = data[:at] + doctype + data[at:]
    elif kind == "namespace":
        present = [ns for ns in NAMESPACES if ns and ns in data]
        if present:
            old = draw(st.sampled_from(present))
            data = data.replace(old, draw(st.sampled_from(NAMESPACES)))
    elif kind == "splice":
        start = draw(st.integers(0, len(data)))
        end = draw(st.integers(start, min(len(data), start + 400)))
        junk = draw(st.binary(max_size=64))
        data = data[:start] + junk + data[end:]
    elif kind == "reencode" and not data.startswith(b"%PDF"):
        codec = draw(st.sampled_from(["utf-16-le", "utf-16-be", "utf-8-sig", "latin-1"]))
        text = data.decode("utf-8", "replace")
        boms = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
        data = boms.get(codec, b"") + text.encode(codec, "replace")
    elif kind == "insert-entity":
        at = draw(st.integers(0, len(data)))
        token = draw(st.sampled_from([b"&x;", b"&#0;", b"&lt;", b"\x00", b"]]>"]))
        data = data[:at] + token + data[at:]
    return f"{name}~{kind}", data


def _check_error(exc: InputError) -> None:
    assert type(exc).__name__ in INPUT_ERROR_NAMES
    assert "\n" not in exc.message
    # Messages quote at most MAX_ECHO characters of input per quoted piece.
    assert len(exc.message) < 4 * MAX_ECHO + 400 or TRUNCATED in exc.message


def _saxon_c14n(xml: bytes) -> bytes:
    """The canonical form of the document Saxon builds from `xml`, the way validate hands it."""
    engine = schematron._get_engine()
    xpath = engine.processor.new_xpath_processor()
    xpath.set_context(xdm_item=schematron.SaxonDocument(xml).node(engine))
    text = str(xpath.evaluate("serialize(/, map{'method': 'xml', 'indent': false()})"))
    return etree.tostring(etree.fromstring(text.encode("utf-8")).getroottree(), method="c14n")


def _check_handed_bytes(document: Document) -> None:
    """What later stages get (Saxon) is UTF-8 that reads as the tree's very document: the
    root and what lies around it (processing instructions, comments), for lxml and Saxon."""
    document.xml.decode("utf-8")
    canonical = etree.tostring(document.tree, method="c14n")
    # The document, not its root element: an element's c14n leaves out its siblings.
    again = etree.fromstring(document.xml).getroottree()
    assert etree.tostring(again, method="c14n") == canonical
    assert _saxon_c14n(document.xml) == canonical


# Real inputs (see PROLOGS below) keep what precedes the root in what Saxon is handed.
_PI_FIRST = MINIMAL_CII.replace(b"<?xml", b"<?Aml", 1)


@bounded(120)
@given(mutated())
@example(("minimal-cii.xml~flip", _PI_FIRST))
@example(("minimal-cii.xml~flip", MINIMAL_CII.replace(b"<?xml", b"<?_ml", 1)))
def test_detect_returns_a_document_or_an_input_error(case: tuple[str, bytes]) -> None:
    _, data = case
    try:
        document = detect(data)
    except InputError as exc:
        _check_error(exc)
        return
    assert isinstance(document, Document)
    _check_handed_bytes(document)


_BODY = MINIMAL_CII[MINIMAL_CII.index(b"?>") + 2 :].lstrip()
PROLOGS: dict[str, bytes] = {
    "pi-instead-of-declaration": b'<?Aml version="1.0"?>' + _BODY,
    "declaration-then-pi": b'<?xml version="1.0" encoding="UTF-8"?>\n<?app a="1"?>\n' + _BODY,
    "comment-first": b"<!-- exported by ERP 4.2 -->\n" + _BODY,
    "pi-and-comment-after-root": b'<?xml version="1.0"?>' + _BODY + b"<!-- end --><?done?>",
    # Re-serialised rather than handed as is: a Latin-1 declaration, a leading blank, UTF-16.
    "latin-1-then-pi": b'<?xml version="1.0" encoding="ISO-8859-1"?><?app?>' + _BODY,
    "blank-then-pi": b" <?app x?>\n<!--c-->" + _BODY,
    "utf-16-pi": codecs.BOM_UTF16_LE + (b"<?app x?>" + _BODY).decode().encode("utf-16-le"),
}


@pytest.mark.parametrize("name", sorted(PROLOGS))
def test_what_surrounds_the_root_reaches_saxon(name: str) -> None:
    """Regression: `<?Aml version="1.0"?><rsm:CrossIndustryInvoice ...>` (found by the property
    above) and its kin. The bytes detect hands on carry every processing instruction and comment
    around the root that the parsed tree has, whether passed as is or re-serialised."""
    document = detect(PROLOGS[name])
    assert document.syntax == "cii"
    around = [
        node
        for node in document.tree.xpath("/processing-instruction() | /comment()")
        if isinstance(node, etree._Element)
    ]
    assert around, "the example has a processing instruction or comment around the root"
    _check_handed_bytes(document)


@bounded(120)
@given(mutated())
def test_readers_return_a_result_or_an_input_error(case: tuple[str, bytes]) -> None:
    _, data = case
    try:
        if data.lstrip()[:5] == b"%PDF-":
            assert isinstance(read_pdf(data), PdfParts)
        else:
            parse_xml(data)
    except (MalformedPDFError, NoInvoiceInPDFError, InputError) as exc:
        _check_error(exc)


@bounded(30)
@given(mutated())
def test_validate_returns_a_report(case: tuple[str, bytes]) -> None:
    _, data = case
    report = validate(data)
    assert isinstance(report, Report)
    if report.error is not None:
        assert report.error_type in INPUT_ERROR_NAMES
        assert not report.ok
    assert "internal error" not in str(report.as_dict())


@bounded(60)
@given(st.binary(max_size=2048))
def test_detect_on_any_bytes(data: bytes) -> None:
    try:
        detect(data)
    except InputError as exc:
        _check_error(exc)


@pytest.mark.parametrize("name", SEED_NAMES)
def test_every_seed_is_readable(name: str) -> None:
    """The seeds themselves are invoices, so mutations start from something valid."""
    assert detect(SEEDS[name]).syntax in {"cii", "ubl-invoice", "ubl-creditnote"}


@bounded(60)
@given(mutated())
def test_read_returns_an_invoice_or_an_input_error(case: tuple[str, bytes]) -> None:
    _, data = case
    try:
        invoice = read(data)
    except InputError as exc:
        _check_error(exc)
        return
    assert isinstance(invoice, Invoice)


def test_an_invoice_behind_a_processing_instruction_validates_through_the_cli(
    tmp_path: Path,
) -> None:
    """The same regression end to end: `facturflow validate` finds a valid invoice valid with a
    processing instruction in place of its declaration, or a comment before its root."""
    from click.testing import CliRunner

    from facturflow.cli import main

    valid = (FIXTURES / "valid" / "fr-invoice-en16931.xml").read_bytes()
    variants = {
        "pi.xml": valid.replace(b"<?xml", b"<?Aml", 1),
        "comment.xml": valid.replace(b"?>", b"?><!-- exported by ERP 4.2 -->", 1),
    }
    for name, data in variants.items():
        assert data != valid
        path = tmp_path / name
        path.write_bytes(data)
        result = CliRunner().invoke(main, ["validate", str(path)])
        assert result.exit_code == 0, result.output
