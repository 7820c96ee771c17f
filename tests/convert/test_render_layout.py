"""The rendered page's layout over many pages (issue 12): no heading ends a page, and every page
says which invoice it belongs to and which page it is.

Two checks of the same PDFs: a structural one that always runs (the text of each page with its
position, read with pypdf: the lowest line of a page's body is never a section heading), and
one on the pixels (pages drawn to PNG by poppler's pdftoppm: ink under every heading on its
page, the running header and footer drawn), skipped with the reason where pdftoppm is absent.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from convert_helpers import FIXED_TIME
from pypdf import PdfReader
from sample_invoice import sample_invoice

from facturflow.model import Invoice, Note, VatBreakdown
from facturflow.render import Language, render_invoice_pdf
from facturflow.render.labels import text

MM = 72 / 25.4  # points per millimetre
PAGE_HEIGHT = 297 * MM
# The body of a page: below the running header (top 13 mm), above the page-break line (20 mm
# from the bottom, where the footer starts).
BODY_TOP = PAGE_HEIGHT - 13 * MM
BODY_BOTTOM = 19 * MM

HEADING_KEYS = ("seller", "buyer", "references", "lines", "allowances_charges", "vat_breakdown",
                "totals", "payment", "notes", "documents")


def headings(lang: Language) -> tuple[str, ...]:
    return tuple(text(key, lang) for key in HEADING_KEYS)


def is_heading(line: str, lang: Language) -> bool:
    """A section heading: 'Notes', or 'Lignes de facture (EUR)'."""
    line = line.strip()
    return any(line == h or (line.startswith(h + " (") and line.endswith(")"))
               for h in headings(lang))


@dataclass(frozen=True)
class Line:
    y: float  # points from the bottom of the page
    text: str


def page_lines(page: object) -> list[Line]:
    """The page's text lines, top to bottom, with their baseline height."""
    chunks: dict[float, list[tuple[float, str]]] = {}

    def visit(value: str, cm: list[float], tm: list[float], *_: object) -> None:
        if value.strip():
            y = round(tm[5] * cm[3] + cm[5], 0)
            chunks.setdefault(y, []).append((tm[4] * cm[0] + cm[4], value))

    page.extract_text(visitor_text=visit)  # type: ignore[attr-defined]
    return [Line(y, " ".join(v.strip() for _, v in sorted(chunks[y])))
            for y in sorted(chunks, reverse=True)]


def body(lines: list[Line]) -> list[Line]:
    return [line for line in lines if BODY_BOTTOM < line.y < BODY_TOP]


def long_invoice(lines: int, note_words: int) -> Invoice:
    """Many lines in mixed units, an exempt VAT line, and long notes."""
    invoice = sample_invoice(lines)
    units = ("HUR", "KGM", "C62", "DAY")
    invoice_lines = tuple(replace(line, unit_code=units[n % len(units)])
                          for n, line in enumerate(invoice.lines))
    words = " ".join(f"clause{n}" for n in range(note_words))
    notes = (
        Note(subject_code="PMT", text="Indemnité forfaitaire pour frais de recouvrement : 40 €."),
        Note(subject_code="PMD", text=f"Pénalités de retard : trois fois le taux légal. {words}"),
        Note(subject_code="AAB", text="Pas d'escompte pour paiement anticipé."),
        Note(text=words),
    )
    exempt = VatBreakdown(taxable_amount=Decimal("0.00"), tax_amount=Decimal("0.00"),
                          category_code="E", rate=Decimal("0"),
                          exemption_reason_code="VATEX-EU-132-1I")
    return replace(invoice, lines=invoice_lines, notes=notes,
                   vat_breakdown=(*invoice.vat_breakdown, exempt))


# Invoices whose sections fall at every height of a page: 6 to 40 lines move the sections
# after the lines table down the page by steps smaller than a heading.
CASES = [(lines, words, lang) for lines in range(6, 41, 2) for words, lang in
         ((40, "fr"), (160, "en"))]


@cache
def rendered(lines: int, words: int, lang: Language) -> bytes:
    return render_invoice_pdf(long_invoice(lines, words), lang=lang, timestamp=FIXED_TIME)


def test_no_heading_is_the_last_line_of_a_page() -> None:
    endings: list[str] = []
    for lines, words, lang in CASES:
        reader = PdfReader(io.BytesIO(rendered(lines, words, lang)))
        for number, page in enumerate(reader.pages, 1):
            content = body(page_lines(page))
            assert content, (lines, words, lang, number)
            last = content[-1].text
            endings.append(last)
            assert not is_heading(last, lang), (
                f"{lines} lines, {lang}: page {number} ends with the heading {last!r}")
    # The sweep did reach the bottom of pages with every kind of section.
    assert len(endings) > 2 * len(CASES)


def test_every_page_names_the_invoice_and_its_page_number() -> None:
    for lines, words, lang in CASES[::7]:
        reader = PdfReader(io.BytesIO(rendered(lines, words, lang)))
        total = len(reader.pages)
        assert total >= 2
        page_word = text("page", lang)
        kind = text("invoice", lang)
        for number, page in enumerate(reader.pages, 1):
            all_lines = [line.text for line in page_lines(page)]
            footer = [line.text for line in page_lines(page) if line.y < BODY_BOTTOM]
            assert any(f"{kind} {text('number', lang)} FA-2026-0042" in line
                       for line in footer), footer
            assert any(page_word.format(page=number, pages=total) in line
                       for line in footer), footer
            if number > 1:  # the running header, above the body
                header = [line.text for line in page_lines(page) if line.y > BODY_TOP]
                assert any("FA-2026-0042" in line for line in header), all_lines[:3]


def test_a_long_invoice_number_is_cut_in_the_running_header_not_overlapping_the_page() -> None:
    invoice = replace(long_invoice(30, 40), number="N" * 400)
    reader = PdfReader(io.BytesIO(render_invoice_pdf(invoice, timestamp=FIXED_TIME)))
    footer = [line.text for line in page_lines(reader.pages[1]) if line.y < BODY_BOTTOM]
    assert any(line.startswith("Facture N° NNN") and "…" in line and "Page 2 sur" in line
               for line in footer), footer


# -- the same pages, drawn ------------------------------------------------------------------

PDFTOPPM = shutil.which("pdftoppm")
needs_pdftoppm = pytest.mark.skipif(
    PDFTOPPM is None,
    reason="pdftoppm (poppler-utils) is not installed: the pages cannot be drawn to PNG "
           "(apt-get install poppler-utils); the structural checks above still ran")
DPI = 60


def draw(pdf: bytes, folder: Path) -> list[Path]:
    """Each page as a PNG, by poppler."""
    source = folder / "page.pdf"
    source.write_bytes(pdf)
    assert PDFTOPPM is not None
    subprocess.run([PDFTOPPM, "-r", str(DPI), "-gray", "-png", str(source),
                    str(folder / "p")], check=True, capture_output=True, timeout=120)
    return sorted(folder.glob("p-*.png"), key=lambda p: int(p.stem.split("-")[-1]))


def ink_rows(image: object, top_pt: float, bottom_pt: float) -> int:
    """How many pixel rows between two heights (points from the page's bottom) hold dark ink
    (text; the light grey rules do not count)."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    scale = DPI / 72
    first = max(0, int((PAGE_HEIGHT - top_pt) * scale))
    last = min(image.height, int((PAGE_HEIGHT - bottom_pt) * scale))
    rows = 0
    for y in range(first, last):
        darkest = image.crop((0, y, image.width, y + 1)).getextrema()[0]
        assert isinstance(darkest, int | float)
        if darkest < 170:  # text, black or grey; the rules (grey 200) stay lighter
            rows += 1
    return rows


@needs_pdftoppm
def test_drawn_pages_show_content_under_every_heading_and_the_running_header(
    tmp_path: Path,
) -> None:
    from PIL import Image

    checked = 0
    for n, (lines, words, lang) in enumerate(CASES[::3]):
        pdf = rendered(lines, words, lang)
        folder = tmp_path / str(n)
        folder.mkdir()
        pages = PdfReader(io.BytesIO(pdf)).pages
        images = draw(pdf, folder)
        assert len(images) == len(pages)
        for number, (page, png) in enumerate(zip(pages, images, strict=True), 1):
            with Image.open(png) as image:
                gray = image.convert("L")
                for line in body(page_lines(page)):
                    if is_heading(line.text, lang):
                        # Under the heading's rule, down to the page-break line: drawn text.
                        below = ink_rows(gray, line.y - 4 * MM, BODY_BOTTOM)
                        assert below > 0, (lines, lang, number, line.text)
                        checked += 1
                assert ink_rows(gray, BODY_BOTTOM, 5 * MM) > 0, "no footer drawn"
                if number > 1:
                    assert ink_rows(gray, PAGE_HEIGHT - 5 * MM, BODY_TOP) > 0, "no header"
    assert checked > len(CASES[::3])


def test_the_buyer_column_stays_beside_a_seller_column_that_runs_over_a_page() -> None:
    from facturflow.model import Identifier

    invoice = sample_invoice(3)
    assert invoice.seller is not None
    identifiers = tuple(Identifier(value=f"ID{n}", scheme="0088") for n in range(60))
    invoice = replace(invoice, seller=replace(invoice.seller, identifiers=identifiers))
    reader = PdfReader(io.BytesIO(render_invoice_pdf(invoice, timestamp=FIXED_TIME)))
    first = page_lines(reader.pages[0])
    buyer = [line for line in first if "Société Générale des Œuvres" in line.text]
    seller = [line for line in first if "Atelier Éléonore SAS" in line.text]
    assert buyer and seller and buyer[0].y == seller[0].y  # side by side, on page 1
    assert "ID59 (GLN)" in reader.pages[1].extract_text()
    second = reader.pages[1].extract_text()
    assert "Société Générale des Œuvres" not in second
