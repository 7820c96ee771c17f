"""facturflow.convert: the syntax conversions, the fidelity gate, the validity gate."""

from __future__ import annotations

import dataclasses
import io

import pytest
from convert_helpers import (
    CII_CREDIT_NOTE,
    CII_EN16931,
    CII_EXTENDED_CTC_FR,
    FACTURX_PDF,
    FIXED_TIME,
    INVALID,
    UBL_CREDIT_NOTE,
    UBL_EN16931,
    UBL_EXTENDED_CTC_FR,
)
from pypdf import PdfReader

from facturflow.conversion import ConversionRejected, ConversionResult, convert, lost_terms
from facturflow.detection import detect
from facturflow.errors import ConversionError, InputError, NotAnInvoiceError
from facturflow.facturx import extract_xml
from facturflow.reading import read
from facturflow.syntax import to_xml


def test_cii_to_facturx_embeds_the_input_bytes_unchanged(plain_pdf: bytes) -> None:
    result = convert(CII_EN16931, to="facturx", pdf=plain_pdf, timestamp=FIXED_TIME)
    assert isinstance(result, ConversionResult)
    assert result.syntax == "facturx" and result.profile == "en16931" and result.suffix == ".pdf"
    assert extract_xml(result.data) == CII_EN16931.read_bytes()
    assert result.report.ok and result.report.container == "pdf"
    assert result.dropped == ()


def test_cii_to_facturx_renders_a_page_when_no_pdf_is_given() -> None:
    result = convert(CII_EN16931, to="facturx", lang="en", timestamp=FIXED_TIME)
    reader = PdfReader(io.BytesIO(result.data))
    assert "Invoice No. F2026-0042" in reader.pages[0].extract_text()
    assert result.report.ok


def test_transmit_call_shape_returns_pdf_bytes() -> None:
    # facturflow.transmit sends exactly convert(document, to="facturx").data
    data = convert(detect(CII_CREDIT_NOTE), to="facturx").data
    assert data.startswith(b"%PDF-")
    assert detect(data).profile == "en16931"


@pytest.mark.parametrize("source", [UBL_EN16931, UBL_CREDIT_NOTE], ids=["invoice", "credit-note"])
def test_ubl_to_facturx_carries_every_business_term(source: object) -> None:
    result = convert(source, to="facturx", timestamp=FIXED_TIME)  # type: ignore[arg-type]
    assert result.report.ok, [f.message for f in result.report.fatal]
    cii = extract_xml(result.data)
    assert lost_terms(read(source), read(cii), ignore={"BT-24"}) == ()  # type: ignore[arg-type]


def test_ubl_to_cii_to_ubl_gives_back_the_same_model() -> None:
    cii = convert(UBL_EN16931, to="cii")
    assert cii.syntax == "cii" and cii.report.ok
    ubl = convert(cii.data, to="ubl")
    assert ubl.syntax == "ubl-invoice" and ubl.report.ok
    # The French CIUS id (BT-24) becomes Factur-X's own in CII, which admits no other.
    assert read(cii.data).specification_id == "urn:cen.eu:en16931:2017"
    assert any("BT-24" in warning for warning in cii.warnings)
    back, original = read(ubl.data), read(UBL_EN16931)
    assert dataclasses.replace(back, specification_id=None) == dataclasses.replace(
        original, specification_id=None
    )


def test_credit_note_stays_a_credit_note_in_ubl() -> None:
    result = convert(CII_CREDIT_NOTE, to="ubl", rules="xsd,en16931")
    assert result.syntax == "ubl-creditnote"
    assert read(result.data).type_code == "381"


def test_a_rule_only_the_target_syntax_has_refuses_the_conversion() -> None:
    # The fixture's seller id (BT-29, a SIRET) has no scheme: CII's BR-FR rules accept that,
    # UBL's BR-FR-CO-10 does not, so the UBL would be invalid for the French network.
    with pytest.raises(ConversionRejected) as caught:
        convert(CII_CREDIT_NOTE, to="ubl")
    assert "BR-FR-CO-10" in caught.value.message
    assert "BT-29" in caught.value.business_terms
    assert caught.value.result is not None
    assert caught.value.result.syntax == "ubl-creditnote"


def test_extended_ctc_fr_keeps_its_profile_by_default() -> None:
    result = convert(UBL_EXTENDED_CTC_FR, to="cii")
    assert result.profile == "extended-ctc-fr"
    assert detect(result.data).profile == "extended-ctc-fr"


def _with_sub_line(path: object) -> bytes:
    """The EXTENDED-CTC-FR fixture with its second line made a DETAIL sub-line of the first."""
    invoice = read(path)  # type: ignore[arg-type]
    lines = list(invoice.lines)
    lines[1] = dataclasses.replace(lines[1], parent_line_id=lines[0].id, line_status="DETAIL")
    return to_xml(dataclasses.replace(invoice, lines=tuple(lines)), "cii")


def test_dropping_an_extension_term_is_refused_and_named() -> None:
    with pytest.raises(ConversionRejected) as caught:
        convert(_with_sub_line(CII_EXTENDED_CTC_FR), to="cii", profile="en16931")
    assert "EXT-FR-FE-162" in caught.value.business_terms
    assert "EXT-FR-FE-162" in caught.value.message
    assert "lossy" in caught.value.message


def test_lossy_conversion_reports_each_dropped_term() -> None:
    result = convert(_with_sub_line(CII_EXTENDED_CTC_FR), to="cii", profile="en16931",
                     lossy=True)
    assert set(result.dropped) == {"EXT-FR-FE-162", "EXT-FR-FE-163"}
    assert result.profile == "en16931"
    assert detect(result.data).profile == "en16931"
    assert read(result.data).lines[1].parent_line_id is None
    assert any("BT-24" in warning for warning in result.warnings)


def test_an_invalid_output_is_refused_with_its_rules_and_terms() -> None:
    with pytest.raises(ConversionRejected) as caught:
        convert(INVALID / "br-co-10-line-sum.xml", to="facturx", timestamp=FIXED_TIME)
    error = caught.value
    assert error.report is not None and not error.report.ok
    assert "BR-CO-10" in error.message
    assert "BT-106" in error.business_terms
    assert isinstance(error, ConversionError)


def test_a_factur_x_input_keeps_its_own_visual() -> None:
    source_pages = len(PdfReader(io.BytesIO(FACTURX_PDF.read_bytes())).pages)
    result = convert(FACTURX_PDF, to="facturx", timestamp=FIXED_TIME)
    assert len(PdfReader(io.BytesIO(result.data)).pages) == source_pages
    assert extract_xml(result.data) == extract_xml(FACTURX_PDF.read_bytes())


def test_a_factur_x_pdf_converts_to_ubl() -> None:
    result = convert(FACTURX_PDF, to="ubl", rules="xsd,en16931")
    assert result.syntax == "ubl-invoice" and result.report.ok


def test_a_visual_pdf_only_goes_with_factur_x(plain_pdf: bytes) -> None:
    with pytest.raises(ConversionError, match="Factur-X"):
        convert(CII_EN16931, to="cii", pdf=plain_pdf)


def test_unknown_target_and_profile_are_refused() -> None:
    with pytest.raises(ConversionError, match="unknown target"):
        convert(CII_EN16931, to="json")  # type: ignore[arg-type]
    with pytest.raises(ConversionError, match="profile"):
        convert(CII_EN16931, to="cii", profile="peppol")


def test_unreadable_input_raises_an_input_error() -> None:
    with pytest.raises(NotAnInvoiceError):
        convert(INVALID / "not-an-invoice.xml")
    with pytest.raises(InputError):
        convert(b"")


def test_wrapping_a_pdf_with_unembedded_fonts_warns_it_is_not_pdfa() -> None:
    from fpdf import FPDF

    visual = FPDF()
    visual.add_page()
    visual.set_font("helvetica", size=12)
    visual.cell(text="Facture F2026-0042")
    result = convert(CII_EN16931, to="facturx", pdf=bytes(visual.output()))
    assert any("Helvetica" in w and "PDF/A" in w for w in result.warnings)


def test_an_xrechnung_travels_in_factur_x_as_en16931(plain_pdf: bytes) -> None:
    xrechnung = CII_EN16931.read_bytes().replace(
        b"<ram:ID>urn:cen.eu:en16931:2017</ram:ID>",
        b"<ram:ID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</ram:ID>",
        1,
    )
    assert detect(xrechnung).profile == "xrechnung"
    result = convert(xrechnung, to="facturx", pdf=plain_pdf)
    assert result.profile == "en16931"
    assert detect(result.data).spec_id == "urn:cen.eu:en16931:2017"
    assert any("xrechnung" in warning for warning in result.warnings)


def test_implied_terms_are_written_where_the_target_needs_them_and_not_counted_lost() -> None:
    # A UBL price discount (BT-147) without gross price (BT-148), and a VAT accounting
    # currency (BT-6) equal to the invoice currency: CII needs the gross price (its schema) and
    # refuses BT-6 = BT-5 (BR-53), so the CII carries the implied gross price and no BT-6.
    xml = UBL_EN16931.read_bytes()
    xml = xml.replace(
        b'<cbc:PriceAmount currencyID="EUR">480.00</cbc:PriceAmount>',
        b'<cbc:PriceAmount currencyID="EUR">480.00</cbc:PriceAmount>'
        b"<cac:AllowanceCharge><cbc:ChargeIndicator>false</cbc:ChargeIndicator>"
        b'<cbc:Amount currencyID="EUR">20.00</cbc:Amount></cac:AllowanceCharge>', 1)
    xml = xml.replace(b"<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>",
                      b"<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>"
                      b"<cbc:TaxCurrencyCode>EUR</cbc:TaxCurrencyCode>", 1)
    source = read(xml)
    assert source.tax_currency_code == "EUR" and source.lines[0].price is not None
    assert source.lines[0].price.discount is not None and source.lines[0].price.gross_price is None
    result = convert(xml, to="facturx", timestamp=FIXED_TIME)  # not lossy: nothing is lost
    assert result.dropped == () and result.report.ok, [f.rule for f in result.report.fatal]
    back = read(extract_xml(result.data))
    assert back.lines[0].price is not None and back.lines[0].price.gross_price == 500
    assert back.tax_currency_code is None
    assert back.totals is not None and back.totals.vat_total_accounting is None
