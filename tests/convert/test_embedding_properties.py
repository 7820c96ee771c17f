"""Property: whatever CII bytes go into a Factur-X PDF come out of it unchanged."""

from __future__ import annotations

import io

from convert_helpers import CII_EN16931
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter

from facturflow.facturx import embed_xml, extract_xml

TEMPLATE = CII_EN16931.read_bytes()


def _plain_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PDF = _plain_pdf()
# Text XML allows: no C0 controls but tab/newline/CR, no surrogates, no U+FFFE/U+FFFF.
xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff",
                           min_codepoint=0x20),
    max_size=200,
).map(lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


@st.composite
def cii_documents(draw: st.DrawFn) -> bytes:
    """The fixture CII varied where a serialiser would normalise: declaration, BOM, line
    endings, indentation, comments, note text (any Unicode), number scale."""
    body = TEMPLATE.split(b"?>", 1)[1].decode("utf-8")
    note = draw(xml_text)
    body = body.replace("Pas d'escompte pour paiement anticipe.", note, 1)
    if draw(st.booleans()):
        comment = draw(xml_text).replace("--", "- -").rstrip("-")
        tag = "<rsm:ExchangedDocument>"
        body = body.replace(tag, f"<!--{comment}-->{tag}", 1)
    if draw(st.booleans()):
        body = body.replace("480.00", "480.0000", 1)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    indent = draw(st.sampled_from(["  ", "\t", ""]))
    body = newline.join(line.replace("  ", indent) for line in body.split("\n"))
    declaration = draw(st.sampled_from([
        "", '<?xml version="1.0" encoding="UTF-8"?>', "<?xml version='1.0' encoding='utf-8'?>",
        '<?xml version="1.0"?>',
    ]))
    data = (declaration + body).encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cii_documents())
def test_any_cii_bytes_embedded_come_back_identical(xml: bytes) -> None:
    assert extract_xml(embed_xml(PDF, xml)) == xml
