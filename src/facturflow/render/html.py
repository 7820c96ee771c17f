"""The invoice as one self-contained HTML page: inline CSS, no script, nothing fetched.

Every text of the invoice is escaped (html.escape, quotes included): an invoice is data from
outside, and its text must never become markup.
"""

from __future__ import annotations

from html import escape

from .content import Document, Pairs, Table, Totals
from .labels import text

_CSS = """
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; font-size: 10pt;
       color: #000; margin: 2em auto; max-width: 60em; padding: 0 1em; }
h1 { font-size: 18pt; margin: 0 0 .5em; }
h2 { font-size: 11pt; border-bottom: 1px solid #c8c8c8; padding-bottom: .2em;
     margin: 1.4em 0 .5em; break-after: avoid; page-break-after: avoid; }
dl.pairs { display: grid; grid-template-columns: 14em 1fr; gap: .15em 1em; margin: 0; }
dl.pairs dt { font-weight: bold; color: #5a5a5a; }
dl.pairs dd { margin: 0; white-space: pre-line; }
.parties { display: grid; grid-template-columns: 1fr 1fr; gap: 2em; }
.parties p { margin: 0; white-space: pre-line; }
.parties p.name { font-weight: bold; }
table { width: 100%; border-collapse: collapse; }
th { background: #ebeff5; text-align: left; }
th, td { padding: .25em .4em; border-bottom: 1px solid #c8c8c8; vertical-align: middle; }
td { white-space: pre-line; }
.RIGHT { text-align: right; } .CENTER { text-align: center; } .LEFT { text-align: left; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
table.totals { width: auto; margin-left: auto; }
table.totals td { border: none; padding: .1em .4em; }
table.totals tr.strong td { font-weight: bold; font-size: 11pt; }
footer { margin-top: 2em; color: #5a5a5a; font-size: 8pt; }
""".strip()


def _e(value: str) -> str:
    return escape(value, quote=True)


def _pairs(rows: tuple[tuple[str, str], ...]) -> list[str]:
    out = ['<dl class="pairs">']
    for label, value in rows:
        out.append(f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>")
    out.append("</dl>")
    return out


def _section(section: Pairs | Table | Totals) -> list[str]:
    out = [f"<section><h2>{_e(section.heading)}</h2>"]
    if isinstance(section, Pairs):
        out += _pairs(section.rows)
    elif isinstance(section, Table):
        out.append("<table><thead><tr>")
        out += [f'<th class="{align}">{_e(column)}</th>'
                for column, align in zip(section.columns, section.aligns, strict=True)]
        out.append("</tr></thead><tbody>")
        for row in section.rows:
            cells = "".join(f'<td class="{align}">{_e(value)}</td>'
                            for value, align in zip(row, section.aligns, strict=True))
            out.append(f"<tr>{cells}</tr>")
        out.append("</tbody></table>")
    else:
        out.append('<table class="totals"><tbody>')
        for label, value, strong in section.rows:
            attrs = ' class="strong"' if strong else ""
            out.append(f'<tr{attrs}><td>{_e(label)}</td><td class="RIGHT">{_e(value)}</td></tr>')
        out.append("</tbody></table>")
    out.append("</section>")
    return out


def render_html(document: Document) -> str:
    """The described invoice as a complete HTML document (a str; encode it as UTF-8)."""
    lang = document.lang
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{"fr" if lang == "fr" else "en"}">',
        "<head>",
        '<meta charset="utf-8">',
        # Nothing to fetch and nothing to run, whatever the page holds.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        'style-src \'unsafe-inline\'">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(document.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<header><h1>{_e(document.title)}</h1>",
    ]
    out += _pairs(document.meta)
    out.append('</header><section class="parties">')
    for party in document.parties:
        out.append(f"<div><h2>{_e(party.heading)}</h2>")
        for n, line in enumerate(party.lines):
            attrs = ' class="name"' if n == 0 else ""
            out.append(f"<p{attrs}>{_e(line)}</p>")
        out.append("</div>")
    out.append("</section>")
    if document.party_extra:
        out += _pairs(document.party_extra)
    for section in document.sections:
        out += _section(section)
    out.append(f"<footer>{_e(text('footer_view', lang))}</footer>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
