"""The rendered invoice page: readable content in French and English, PDF/A-3 essentials."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from convert_helpers import FIXED_TIME, qpdf_check
from pypdf import PdfReader
from pypdf.generic import DictionaryObject
from sample_invoice import sample_invoice

from facturflow.render import render_invoice_pdf
from facturflow.render.labels import format_amount, format_date, format_number, format_percent


def page_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_french_page_shows_parties_lines_vat_totals_and_payment() -> None:
    text = page_text(render_invoice_pdf(sample_invoice(), lang="fr", timestamp=FIXED_TIME))
    for expected in ("Facture N° FA-2026-0042", "Atelier Éléonore SAS",
                     "Société Générale des Œuvres", "FR32123456782",
                     "Prestation de conseil n° 3", "Ventilation de la TVA",
                     "Total HT", "590,00 EUR", "Total TTC", "708,00 EUR", "Net à payer",
                     "FR7630006000011234567890189", "Virement SEPA", "31/01/2026"):
        assert expected in text, expected


def test_english_page_uses_english_labels_and_number_format() -> None:
    text = page_text(render_invoice_pdf(sample_invoice(), lang="en", timestamp=FIXED_TIME))
    for expected in ("Invoice No. FA-2026-0042", "Seller", "Buyer", "VAT breakdown",
                     "Total excluding VAT", "590.00 EUR", "Amount due", "708.00 EUR",
                     "SEPA credit transfer", "31 Jan 2026"):
        assert expected in text, expected
    assert "Net à payer" not in text


def test_many_lines_flow_over_several_numbered_pages() -> None:
    pdf = render_invoice_pdf(sample_invoice(60), lang="fr", timestamp=FIXED_TIME)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 3
    assert f"Page {len(reader.pages)} sur {len(reader.pages)}" in reader.pages[-1].extract_text()
    assert "Prestation de conseil n° 60" in page_text(pdf)


def test_every_font_is_embedded_and_an_output_intent_is_present() -> None:
    reader = PdfReader(io.BytesIO(render_invoice_pdf(sample_invoice(), timestamp=FIXED_TIME)))
    fonts = 0
    for page in reader.pages:
        resources = page["/Resources"]
        for font in resources["/Font"].values():
            font = font.get_object()
            descendants = font.get("/DescendantFonts")
            descriptor_owner = descendants[0].get_object() if descendants else font
            descriptor = descriptor_owner["/FontDescriptor"].get_object()
            assert any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))
            assert "/ToUnicode" in font
            fonts += 1
    assert fonts >= 2
    root = reader.trailer["/Root"]
    assert isinstance(root, DictionaryObject)
    assert root["/OutputIntents"][0].get_object()["/S"] == "/GTS_PDFA1"


def test_characters_the_font_lacks_print_as_question_marks() -> None:
    from dataclasses import replace

    invoice = sample_invoice()
    assert invoice.buyer is not None
    invoice = replace(invoice, buyer=replace(invoice.buyer, name="株式会社 Kyoto"))
    text = page_text(render_invoice_pdf(invoice, timestamp=FIXED_TIME))
    assert "???? Kyoto" in text


def test_rendered_page_passes_qpdf_check(tmp_path: Path) -> None:
    result = qpdf_check(render_invoice_pdf(sample_invoice(), timestamp=FIXED_TIME), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="language"):
        render_invoice_pdf(sample_invoice(), lang="de")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fr", "en"),
    [
        ("1234567.505", "1\u202f234\u202f567,51", "1,234,567.51"),
        ("-0.5", "-0,50", "-0.50"),
        ("0", "0,00", "0.00"),
    ],
)
def test_amounts_read_as_each_language_writes_them(value: str, fr: str, en: str) -> None:
    assert format_number(Decimal(value), "fr") == fr
    assert format_number(Decimal(value), "en") == en


def test_quantities_keep_their_precision_and_rates_their_sign() -> None:
    assert format_number(Decimal("2.5000"), "fr", places=None) == "2,5"
    assert format_number(Decimal("1E+3"), "en", places=None) == "1,000"
    assert format_percent(Decimal("5.5"), "fr") == "5,5\u202f%"
    assert format_amount(Decimal("10"), "EUR", "en") == "10.00 EUR"
    assert format_date(None, "fr") == ""
