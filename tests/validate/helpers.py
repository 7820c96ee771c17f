"""Builders shared by the validation tests."""

from __future__ import annotations

import io
from pathlib import Path

from lxml import etree
from pypdf import PdfWriter

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
VALID_CII = FIXTURES / "valid" / "fr-invoice-en16931.xml"
VALID_UBL = FIXTURES / "valid" / "fr-invoice-ubl-en16931.xml"
VALID_PDF = FIXTURES / "valid" / "fr-invoice-en16931.pdf"
XSLT = "http://www.w3.org/1999/XSL/Transform"


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_attachment(name: str, data: bytes) -> bytes:
    """A plain PDF (no XMP, no /AF) carrying one embedded file."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_attachment(name, data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def facturx_pdf(xml: bytes, level: str) -> bytes:
    """A Factur-X PDF made by the factur-x package, declaring `level` in its XMP."""
    import facturx

    return bytes(
        facturx.generate_from_binary(
            blank_pdf(),
            xml,
            flavor="factur-x",
            level=level,
            check_xsd=False,
            afrelationship="alternative",
        )
    )


def schematron_xslt(rule_id: str, test: str, flag: str | None = "fatal", fire: bool = True) -> str:
    """A minimal compiled-Schematron-like XSLT emitting SVRL with one assert on the root."""
    flag_attr = f' flag="{flag}"' if flag else ""
    fired = '<svrl:fired-rule context="/*"/>' if fire else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="2.0" xmlns:xsl="{XSLT}" xmlns:svrl="http://purl.oclc.org/dsdl/svrl">
  <xsl:template match="/">
    <svrl:schematron-output>
      {fired}
      <xsl:if test="not({test})">
        <svrl:failed-assert id="{rule_id}"{flag_attr} test="{test}" location="/*[1]">
          <svrl:text>[{rule_id}] the invoice must satisfy {test} (BT-1)</svrl:text>
        </svrl:failed-assert>
      </xsl:if>
    </svrl:schematron-output>
  </xsl:template>
</xsl:stylesheet>
"""


def with_invoice_number(path: Path, number: str) -> bytes:
    """The CII fixture with another invoice number (BT-1)."""
    tree = etree.parse(str(path))
    ns = {
        "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
        "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    }
    element = tree.find("rsm:ExchangedDocument/ram:ID", ns)
    assert element is not None
    element.text = number
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
