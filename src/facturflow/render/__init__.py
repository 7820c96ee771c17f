"""Human-readable renderings of an invoice, in French or English: a PDF/A-3B or an HTML page.

    >>> from facturflow.render import render
    >>> pdf = render("fixtures/valid/fr-invoice-en16931.xml", lang="en")  # doctest: +SKIP

`render(invoice_or_path, format=..., lang=...)` reads any invoice facturflow reads (CII, UBL,
Factur-X PDF; codes outside the code lists are kept and shown as themselves) and lays out its
parties, lines, VAT breakdown, totals, payment details and notes with codes in words (units,
payment means, VAT categories, note subjects, exemption reasons). The PDF is the page
`facturflow convert` puts in a Factur-X (`render_invoice_pdf`, fpdf2, bundled DejaVu Sans
fonts embedded); the HTML is one self-contained file, every text of the invoice escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from .labels import LANGUAGES, Language

if TYPE_CHECKING:
    from ..detection import Source
    from ..model import Invoice
    from .pdf import render_invoice_pdf


def __getattr__(name: str) -> Any:
    # The PDF renderer (fpdf2, ~0.2 s to import) only when asked for: the HTML validation
    # report uses facturflow.render.content and .labels, not it.
    if name == "render_invoice_pdf":
        from .pdf import render_invoice_pdf

        return render_invoice_pdf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

Format = Literal["pdf", "html"]
FORMATS: tuple[Format, ...] = ("pdf", "html")


def render(
    invoice: Invoice | Source, *, format: Format = "pdf", lang: Language = "fr"
) -> bytes:
    """`invoice` (the model, or a path or bytes to read) as a readable PDF or HTML page.

    Raises ValueError for an unknown format or language, and facturflow.errors.InputError
    when the input is not a readable invoice. The same input gives the same bytes (the PDF
    is dated by the invoice's issue date).
    """
    from ..model import Invoice

    if format not in FORMATS:
        raise ValueError(f"unsupported format {format!r} (pdf or html)")
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r} (fr or en)")
    if not isinstance(invoice, Invoice):
        from ..reading import read

        # A received invoice may carry codes outside today's lists: show them, don't refuse.
        invoice = read(invoice, check_codes=False)
    if format == "pdf":
        from .pdf import render_invoice_pdf

        return render_invoice_pdf(invoice, lang=lang, xml_is_reference=None)
    from .content import describe
    from .html import render_html

    return render_html(describe(invoice, lang)).encode("utf-8")


__all__ = ["FORMATS", "LANGUAGES", "Format", "Language", "render", "render_invoice_pdf"]
