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

from facturflow.model import Invoice
from facturflow.render import Language, render_invoice_pdf
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


# -- the per-process font caches change nothing in the bytes --------------------------------

_RENDER_ALONE = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from dataclasses import replace
from convert_helpers import FIXED_TIME
from sample_invoice import sample_invoice
from facturflow.model import Invoice
from facturflow.render import Language, render_invoice_pdf
invoice = sample_invoice({lines})
invoice = replace(invoice, buyer=replace(invoice.buyer, name={buyer!r}))
Path({out!r}).write_bytes(render_invoice_pdf(invoice, lang={lang!r}, timestamp=FIXED_TIME))
"""


def _variant(lines: int, buyer: str) -> Invoice:
    from dataclasses import replace

    invoice = sample_invoice(lines)
    assert invoice.buyer is not None
    return replace(invoice, buyer=replace(invoice.buyer, name=buyer))


def test_each_page_has_the_bytes_it_has_when_rendered_alone_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    # Different glyph sets (ß, ñ, Ω are outside the fonts' common base) and page counts,
    # rendered one after the other in this process: nothing drawn for one may reach the next.
    cases: list[tuple[int, str, Language]] = [
        (3, "Straße & Söhne GmbH", "fr"), (40, "Peña Ωmega", "en"), (1, "ACME", "fr")]
    in_process = [
        render_invoice_pdf(_variant(lines, buyer), lang=lang, timestamp=FIXED_TIME)
        for lines, buyer, lang in cases
    ]
    tests = str(Path(__file__).parent)
    for (lines, buyer, lang), expected in zip(cases, in_process, strict=True):
        out = tmp_path / f"alone-{lines}.pdf"
        code = _RENDER_ALONE.format(tests=tests, lines=lines, buyer=buyer, lang=lang,
                                    out=str(out))
        subprocess.run([sys.executable, "-c", code], check=True)
        assert out.read_bytes() == expected, (lines, buyer, lang)


def test_cached_fonts_give_the_bytes_plain_fpdf2_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    import facturflow.render.pdf as render_pdf

    invoices = [_variant(3, "Straße & Söhne GmbH"), _variant(12, "Atelier Éléonore"),
                sample_invoice()]
    cached = [render_invoice_pdf(inv, timestamp=FIXED_TIME) for inv in invoices]
    again = [render_invoice_pdf(inv, timestamp=FIXED_TIME) for inv in invoices]
    monkeypatch.setattr(render_pdf, "_plain_fpdf", True)  # fpdf2's add_font and subsetting
    plain = [render_invoice_pdf(inv, timestamp=FIXED_TIME) for inv in invoices]
    assert cached == again == plain
    assert len(set(cached)) == len(invoices)


def test_another_fpdf2_version_takes_fpdf2s_own_font_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The font-output copy is tied to the fpdf2 version it mirrors; any other version falls
    # back to fpdf2's own code, which gives the same document.
    from fpdf.output import OutputProducer

    import facturflow.render.pdf as render_pdf

    calls: list[str] = []
    original = OutputProducer._add_fonts

    def spy(self: object, *args: object) -> object:
        calls.append("fpdf2")
        return original(self, *args)  # type: ignore[arg-type]

    invoice = _variant(3, "Straße & Söhne GmbH")
    ours = render_invoice_pdf(invoice, timestamp=FIXED_TIME)
    monkeypatch.setattr(OutputProducer, "_add_fonts", spy)
    assert render_invoice_pdf(invoice, timestamp=FIXED_TIME) == ours and calls == []
    monkeypatch.setattr(render_pdf, "_FPDF_VERSION", "99.0")
    assert render_invoice_pdf(invoice, timestamp=FIXED_TIME) == ours and calls == ["fpdf2"]


def test_same_invoice_and_timestamp_give_the_same_bytes_whatever_the_clock() -> None:
    import time

    first = render_invoice_pdf(sample_invoice(), timestamp=FIXED_TIME)
    time.sleep(1.05)  # fpdf2 would date the XMP ModifyDate by the clock
    assert render_invoice_pdf(sample_invoice(), timestamp=FIXED_TIME) == first
    assert b'xmp:ModifyDate="2026-03-10T09:30:00+00:00"' in first


def test_a_line_taller_than_a_page_continues_on_the_next_pages() -> None:
    from dataclasses import replace

    invoice = sample_invoice(2)
    words = " ".join(f"mot{n}" for n in range(1500))
    assert invoice.lines[1].item is not None
    long_line = replace(invoice.lines[1], item=replace(invoice.lines[1].item, name=words))
    pdf = render_invoice_pdf(replace(invoice, lines=(invoice.lines[0], long_line)),
                             timestamp=FIXED_TIME)
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 3
    text = page_text(pdf).split()
    assert "mot0" in text and "mot1499" in text
    spanned = [page.extract_text() for page in reader.pages if "mot" in page.extract_text()]
    assert len(spanned) >= 3
    assert all("Quantité" in page for page in spanned)  # the heading row repeats on each


def test_a_table_heading_row_never_ends_a_page_without_a_row_under_it() -> None:
    from dataclasses import replace

    from facturflow.model import Identifier

    invoice = sample_invoice(3)
    assert invoice.seller is not None
    # Longer and longer seller blocks push the lines table across the bottom of page 1.
    for count in range(20, 45):
        identifiers = tuple(Identifier(value=f"ID{n}", scheme="0088") for n in range(count))
        seller = replace(invoice.seller, identifiers=identifiers)
        pdf = render_invoice_pdf(replace(invoice, seller=seller), timestamp=FIXED_TIME)
        for page in PdfReader(io.BytesIO(pdf)).pages:
            body = page.extract_text().split("Facture électronique Factur-X")[0].rstrip()
            assert not body.endswith("Montant HT"), (count, body[-200:])
