"""Human-readable renderings of an invoice: a PDF/A-3B page in French or English.

`render_invoice_pdf(invoice, lang="fr")` lays out the parties, lines, VAT breakdown, totals and
payment details of a `facturflow.Invoice` with fpdf2 (pure Python, no system libraries), with
the bundled DejaVu Sans fonts embedded and an sRGB output intent.
"""

from .labels import LANGUAGES, Language
from .pdf import render_invoice_pdf

__all__ = ["LANGUAGES", "Language", "render_invoice_pdf"]
