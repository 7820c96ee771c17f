"""`facturflow render` and `facturflow.render.render` (issue 12): a readable view of any invoice,
in PDF or self-contained HTML, with words instead of codes; and the same words on the Factur-X
page of `convert`."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from decimal import Decimal
from html import unescape
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from convert_helpers import CII_EN16931, FACTURX_PDF, FIXED_TIME, UBL_EN16931
from pypdf import PdfReader
from sample_invoice import sample_invoice

from facturflow.cli import main
from facturflow.facturx import build_facturx
from facturflow.model import (
    AllowanceCharge,
    Invoice,
    LineVat,
    Note,
    PaymentInstructions,
    VatBreakdown,
)
from facturflow.render import render, render_invoice_pdf
from facturflow.render.labels import name


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(key for key, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: bytes) -> _Tags:
    parser = _Tags()
    parser.feed(html.decode("utf-8"))
    parser.close()
    return parser


def coded_invoice() -> Invoice:
    """An invoice whose units, VAT categories, exemption, note subjects and payment means are
    all codes, some without words in the data (they show as themselves)."""
    invoice = sample_invoice(4)
    units = ("HUR", "KGM", "DAY", "E34")
    lines = tuple(replace(line, unit_code=unit) for line, unit in zip(invoice.lines, units,
                                                                         strict=True))
    lines = (*lines[:3], replace(lines[3], vat=LineVat(category_code="AE", rate=Decimal("0"))))
    return replace(
        invoice,
        lines=lines,
        notes=(Note(subject_code="PMT", text="Indemnité forfaitaire : 40 €."),
               Note(subject_code="AAB", text="Pas d'escompte."),
               Note(subject_code="TXD", text="TVA acquittée sur les débits."),
               Note(subject_code="BLU", text="Éco-participation incluse.")),
        payment_instructions=PaymentInstructions(means_code="49"),
        allowances=(AllowanceCharge(amount=Decimal("10.00"), vat_category_code="S",
                                    vat_rate=Decimal("20"), reason_code="95"),),
        vat_breakdown=(*invoice.vat_breakdown,
                       VatBreakdown(taxable_amount=Decimal("200.00"), tax_amount=Decimal("0.00"),
                                    category_code="AE", rate=Decimal("0"),
                                    exemption_reason_code="VATEX-EU-AE")),
    )


# -- words, not codes ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["pdf", "html"])
def test_codes_read_as_words_in_french(fmt: str) -> None:
    out = render(coded_invoice(), format=fmt, lang="fr")  # type: ignore[arg-type]
    shown = pdf_text(out) if fmt == "pdf" else unescape("".join(parse(out).text))
    for words in ("heure", "kilogramme", "jour", "Autoliquidation", "Taux normal",
                  "Informations de paiement", "Conditions de paiement", "Informations fiscales",
                  "Informations sur les déchets", "Prélèvement", "Remise",
                  "Facture commerciale"):
        assert words in shown, words
    assert "gigaoctet" in shown  # E34: words from UN/ECE Rec 20
    for code in ("HUR", "KGM", "C62", "PMT", "AAB", "TXD", "VATEX-EU-AE"):
        assert code not in shown, code


def test_codes_read_as_words_in_english() -> None:
    shown = pdf_text(render(coded_invoice(), lang="en"))
    for words in ("hour", "kilogram", "day", "Reverse charge", "Standard rate",
                  "Payment information", "Terms of payment", "Direct debit",
                  "Commercial invoice"):
        assert words in shown, words
    assert "heure" not in shown


def test_a_code_without_words_shows_as_itself() -> None:
    assert name("unit", "C62", "fr") == "unité" and name("unit", "C62", "en") == "unit"
    assert name("unit", "XYZ", "fr") == "XYZ"
    assert name("text_subject", None, "en") == ""
    assert name("vatex", "vatex-eu-ae", "en") == "Reverse charge"  # VATEX is case-insensitive
    from facturflow.model import unchecked_codes

    with unchecked_codes():  # a received invoice may carry a code outside today's lists
        invoice = sample_invoice(1)
        invoice = replace(invoice, lines=(replace(invoice.lines[0], unit_code="QQQ"),))
    assert "QQQ" in pdf_text(render(invoice))


def test_the_words_data_names_the_common_units_and_every_vatex_code() -> None:
    data = json.loads(resources.files("facturflow.render").joinpath("codenames.json")
                      .read_text("utf-8"))
    for unit in ("C62", "H87", "HUR", "DAY", "KGM", "MTR", "LTR", "MTK", "KWH", "MON", "ANN",
                 "WEE", "XPP", "SET"):
        assert set(data["unit"][unit]) == {"fr", "en"}, unit
    for category in ("S", "Z", "E", "AE", "K", "G", "O", "L", "M"):
        assert data["vat_category"][category]["fr"], category
    for subject in ("AAI", "AAB", "PMT", "PMD", "REG", "ABL", "TXD", "SUR", "AAK"):
        assert data["text_subject"][subject]["en"], subject
    codelists = json.loads(resources.files("facturflow.model").joinpath("codelists.json")
                           .read_text("utf-8"))
    assert set(data["vatex"]) == set(codelists["vatex"])
    for key in ("unit", "payment_means", "vat_category", "text_subject", "invoice_type",
                "allowance_reason", "charge_reason"):
        assert set(data[key]) <= set(codelists[key]), key  # no words for codes that cannot be


def test_the_factur_x_page_of_convert_uses_words() -> None:
    out = build_facturx(CII_EN16931.read_bytes(), timestamp=FIXED_TIME)
    shown = pdf_text(out)
    assert "heure" in shown and "unité" in shown and "Virement SEPA" in shown
    assert " HUR" not in shown and " C62" not in shown
    pages = len(PdfReader(io.BytesIO(out)).pages)
    # The title, every footer, and the running header of every page after the first.
    assert shown.count("Facture N° F2026-0042") == 2 * pages
    assert f"Page {pages} sur {pages}" in shown


# -- HTML -------------------------------------------------------------------------------------


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_html_is_one_self_contained_page() -> None:
    html = render(sample_invoice(3), format="html", lang="en")
    page = parse(html)
    assert html.startswith(b"<!DOCTYPE html>") and '<html lang="en">' in html.decode()
    assert page.tags <= {"html", "head", "meta", "title", "style", "body", "header", "h1",
                         "h2", "dl", "dt", "dd", "section", "div", "p", "table", "thead",
                         "tbody", "tr", "th", "td", "footer"}, page.tags
    assert "src" not in page.attrs and "href" not in page.attrs
    assert b"http://" not in html and b"https://" not in html and b"url(" not in html
    text = "".join(page.text)
    for expected in ("Invoice No. FA-2026-0042", "Atelier Éléonore SAS", "590.00 EUR",
                     "708.00 EUR", "SEPA credit transfer", "31 Jan 2026", "unit"):
        assert expected in text, expected


def test_hostile_invoice_text_stays_text_in_html() -> None:
    invoice = sample_invoice(2)
    assert invoice.seller is not None and invoice.lines[0].item is not None
    invoice = replace(
        invoice,
        number=f"FA-1{HOSTILE}",
        seller=replace(invoice.seller, name=f'Evil "SAS" {HOSTILE}'),
        notes=(Note(subject_code="AAI", text=f"</style></title>{HOSTILE}"),),
        lines=(replace(invoice.lines[0], item=replace(invoice.lines[0].item,
                                                      name=f"<b>bold</b>{HOSTILE}")),
               invoice.lines[1]),
    )
    html = render(invoice, format="html")
    page = parse(html)
    assert "script" not in page.tags and "img" not in page.tags and "b" not in page.tags
    assert "onerror" not in page.attrs and "src" not in page.attrs
    assert b"<script" not in html and b"<img" not in html
    text = "".join(page.text)
    # Every hostile text is there, as text, once per place it was put.
    assert text.count(HOSTILE) >= 4
    assert "</style></title>" in text and "<b>bold</b>" in text


# -- the library --------------------------------------------------------------------------


def test_render_reads_paths_bytes_and_factur_x_pdfs() -> None:
    from_path = render(UBL_EN16931, format="html", lang="en")
    assert from_path == render(UBL_EN16931.read_bytes(), format="html", lang="en")
    assert b"Invoice No." in from_path
    pdf = render(FACTURX_PDF, format="pdf")
    assert pdf.startswith(b"%PDF-") and "Facture N°" in pdf_text(pdf)
    assert render(str(CII_EN16931)) == render(CII_EN16931)  # the same bytes each time


def test_render_refuses_an_unknown_format_or_language() -> None:
    with pytest.raises(ValueError, match="format"):
        render(sample_invoice(), format="docx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language"):
        render(sample_invoice(), lang="de")  # type: ignore[arg-type]


def test_the_view_says_the_original_file_is_the_invoice_of_record() -> None:
    # Not the Factur-X notice: a view of a UBL invoice has no factur-x.xml attached.
    view = pdf_text(render(UBL_EN16931))
    assert "le fichier d'origine fait foi" in view and "factur-x.xml" not in view
    page = pdf_text(render_invoice_pdf(sample_invoice(), timestamp=FIXED_TIME))
    assert "factur-x.xml joint fait foi" in page


# -- the command --------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "out", "lang", "expected"), [
    (CII_EN16931, "view.pdf", "fr", "Facture N°"),
    (UBL_EN16931, "view.html", "en", "Invoice No."),
    (FACTURX_PDF, "view.HTM", "fr", "Facture N°"),
])
def test_cli_writes_the_view(source: Path, out: str, lang: str, expected: str,
                             tmp_path: Path) -> None:
    target = tmp_path / out
    result = CliRunner().invoke(main, ["render", str(source), "-o", str(target),
                                       "--lang", lang])
    assert result.exit_code == 0, result.output
    data = target.read_bytes()
    if out.endswith(".pdf"):
        assert data.startswith(b"%PDF-") and expected in pdf_text(data)
    else:
        assert data.startswith(b"<!DOCTYPE html>") and expected in data.decode()
    assert data == render(source, format="pdf" if out.endswith(".pdf") else "html",
                          lang=lang)  # type: ignore[arg-type]


def test_cli_format_option_overrides_the_extension(tmp_path: Path) -> None:
    target = tmp_path / "view.txt"
    result = CliRunner().invoke(main, ["render", str(CII_EN16931), "-o", str(target),
                                       "--format", "html"])
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"<!DOCTYPE html>")


@pytest.mark.parametrize(("args", "message"), [
    (["{cii}", "-o", "{tmp}/view.txt"], "cannot tell the format"),
    (["{tmp}/missing.xml", "-o", "{tmp}/view.pdf"], "no such file"),
    (["{tmp}/junk.xml", "-o", "{tmp}/view.pdf"], "error:"),
    (["{cii}", "-o", "{tmp}/no/such/folder/view.pdf"], "cannot write"),
    (["{tmp}", "-o", "{tmp}/view.pdf"], "directory"),
    (["{cii}", "-o", "-"], "standard output has no extension to tell the format"),
    (["{cii}", "-o", "{tmp}"], "is a folder: name the file to write in it"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args: list[str], message: str,
                                              tmp_path: Path) -> None:
    (tmp_path / "junk.xml").write_text("<not-an-invoice/>")
    argv = ["render", *(a.format(cii=CII_EN16931, tmp=tmp_path) for a in args)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "view.pdf").exists()


@pytest.mark.parametrize("fmt", ["pdf", "html"])
def test_cli_writes_to_standard_output_with_a_dash(fmt: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # `-o -` wrote a file named '-' in the current folder.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["render", str(CII_EN16931), "-o", "-", "--format", fmt])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == render(CII_EN16931, format=fmt)  # type: ignore[arg-type]
    assert result.stderr == f"-: {fmt.upper()} view of {CII_EN16931} (fr)\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_an_empty_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `-o "$OUT"` with OUT unset: "" was the current folder.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["render", str(CII_EN16931), "-o", ""])
    assert result.exit_code == 2
    assert "Invalid value for '--output' / '-o': is empty (an unset variable?)" in result.output
    assert list(tmp_path.iterdir()) == []


_MINIMAL = CII_EN16931.read_bytes()
UNREADABLE: dict[str, bytes] = {
    "empty.xml": b"",
    "laughs.xml": b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>',
    "not-invoice.xml": b'<order xmlns="urn:example:orders"><id>1</id></order>',
    "truncated.xml": _MINIMAL[: len(_MINIMAL) // 2],
    "junk.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 64,
    "binary.xml": bytes(range(256)) * 8,
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
def test_cli_refuses_unreadable_invoices_in_one_line(name: str, tmp_path: Path) -> None:
    source = tmp_path / name
    source.write_bytes(UNREADABLE[name])
    out = tmp_path / "view.html"
    result = CliRunner().invoke(main, ["render", str(source), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert [line for line in result.output.splitlines() if line] == [
        line for line in result.output.splitlines() if line.startswith(f"{source}: error: ")]
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
