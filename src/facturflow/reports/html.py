"""The HTML report: one self-contained file a person opens in a browser.

Nothing is fetched: the CSS and the small filter script are inline, and a Content-Security-Policy
allows exactly those two (by their sha256) and nothing else, so even a string that escaped
escaping could neither run nor load anything. The page holds:

- the batch: files by verdict, findings by severity, the most frequent rules;
- a table of the files (verdict, what it is, invoice number, seller, amount due, counts), each
  linking to its file;
- per file (a collapsible block), the invoice's key data as `facturflow render` words it
  (facturflow.render.content: parties, number, dates, lines, VAT, totals, payment), with each
  finding pinned next to what it concerns: a line's finding (business-term path `BG-25[3] / …`)
  under that line, a total's under the totals, a seller's under the seller...; findings on no
  term (the XML, the PDF, the rule selection) in a general block at the top. Each finding shows
  its message as published, its locations, the values of its terms and the fix hint;
- filters by severity and rule (the script; without JavaScript everything is shown).

Every text from the invoice or the file system is escaped, control characters and lone
surrogates replaced, invoice text isolated for bidirectional display (`<bdi>`), and bidi
controls in file paths made visible. Labels in English or French (`lang`).

Reading each invoice through the EN 16931 model is what costs (a few ms a file, against well
under a millisecond for the markup); the reading is the run's, shared with its other reports
(values.read_model), and a large batch reads its files in worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

from .. import __version__
from ..validation.report import SEVERITIES, Finding, Report
from .hints import hint
from .html_assets import _CSS, _SCRIPT, CSP
from .termpath import term_path
from .text import Group, group_findings, short_xpath
from .values import Read, describe_term, read_model, readable, remember, report_terms

if TYPE_CHECKING:  # facturflow.render imports the PDF renderer: only when a report is written
    from ..render.content import Document, Pairs, Table, Totals
    from ..render.labels import Language

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "facturflow validation report",
        "files": "Files",
        "file": "File",
        "verdict": "Verdict",
        "kind": "Container, syntax, profile",
        "number": "Invoice",
        "seller": "Seller",
        "due": "Amount due",
        "valid": "valid",
        "invalid": "invalid",
        "unreadable": "unreadable",
        "fatal": "fatal",
        "warning": "warning",
        "information": "information",
        "short": "fatal|warn.|info",
        "filter": "Show",
        "rule": "Rule",
        "all": "all rules",
        "shown": "findings shown",
        "expand": "Expand all",
        "collapse": "Collapse all",
        "at": "at",
        "terms": "terms",
        "values": "values",
        "hint": "hint",
        "none": "No finding.",
        "general": "About the file",
        "no_data": "Key data not shown",
        "no_model": "the invoice cannot be read through the EN 16931 model",
        "not_run": "did not run",
        "checked": "checked",
        "note": "note",
        "top": "Most frequent rules",
        "findings": "findings",
        "total": "total",
        "folder": "Paths below are under",
        "generated": "Written by facturflow",
        "line": "line",
        "nojs": "Filters need JavaScript; every finding is shown.",
        "stdin": "it came from standard input, which is not kept",
        "gone": "the file is no longer there",
    },
    "fr": {
        "title": "Rapport de validation facturflow",
        "files": "Fichiers",
        "file": "Fichier",
        "verdict": "Verdict",
        "kind": "Conteneur, syntaxe, profil",
        "number": "Facture",
        "seller": "Vendeur",
        "due": "Net à payer",
        "valid": "valide",
        "invalid": "invalide",
        "unreadable": "illisible",
        "fatal": "bloquant",
        "warning": "avertissement",
        "information": "information",
        "short": "bloq.|avert.|info",
        "filter": "Afficher",
        "rule": "Règle",
        "all": "toutes les règles",
        "shown": "anomalies affichées",
        "expand": "Tout déplier",
        "collapse": "Tout replier",
        "at": "à",
        "terms": "termes",
        "values": "valeurs",
        "hint": "conseil",
        "none": "Aucune anomalie.",
        "general": "À propos du fichier",
        "no_data": "Données de la facture non affichées",
        "no_model": "la facture ne peut pas être lue selon le modèle EN 16931",
        "not_run": "non exécutée",
        "checked": "contrôles",
        "note": "remarque",
        "top": "Règles les plus fréquentes",
        "findings": "anomalies",
        "total": "total",
        "folder": "Chemins relatifs au dossier",
        "generated": "Produit par facturflow",
        "line": "ligne",
        "nojs": "Les filtres demandent JavaScript ; toutes les anomalies sont affichées.",
        "stdin": "elle a été lue sur l'entrée standard, qui n'est pas conservée",
        "gone": "le fichier n'est plus là",
    },
}

# Characters that have no place in a page: C0/C1 controls (not tab or newline) and the lone
# surrogates of undecodable file names.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Bidirectional controls: in a file name they can disguise it (`invoice\u202efdp.exe`).
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# How `facturflow validate -` names standard input, which is not kept to be read again.
STDIN_NAME = "<stdin>"
# Invoice text shown up to this many characters (a note, a name): the page stays openable.
MAX_TEXT = 4_000
# Batches above this size open no file block by default (the page stays short).
OPEN_UP_TO = 20
# Batches from this size read their invoices in worker processes.
PARALLEL_FROM = 64


def _e(value: object) -> str:
    """Text escaped for an element or a quoted attribute."""
    return escape(_UNSAFE.sub("\ufffd", str(value)), quote=True)


def _path(value: str) -> str:
    """A file path, escaped, its bidirectional controls shown as code points."""
    shown = _BIDI.sub(lambda m: f"<U+{ord(m.group()):04X}>", _UNSAFE.sub("\ufffd", value))
    return escape(shown, quote=True)


def _bdi(value: str) -> str:
    """Invoice text, escaped and isolated from the text around it (right-to-left names); past
    MAX_TEXT characters cut, with the count left out (`…[+998,000]`, the same in every
    language): one 1 MB word took a browser minutes to lay out."""
    if len(value) > MAX_TEXT:
        return f"<bdi>{_e(value[:MAX_TEXT])}</bdi>\u2026[+{len(value) - MAX_TEXT:,}]"
    return f"<bdi>{_e(value)}</bdi>"


def common_folder(paths: list[str]) -> str:
    """The folder every path is under, with its trailing separator ('' when none is, or for
    one file): the summary table shows the paths below it."""
    if len(paths) < 2:
        return ""
    try:
        common = os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:  # absolute and relative paths mixed
        return ""
    if not common or common == os.sep:
        return ""
    return common + os.sep


def _verdict(report: Report) -> str:
    if report.error is not None:
        return "unreadable"
    return "valid" if report.ok else "invalid"


# -- where a finding goes ---------------------------------------------------------------------

# Blocks of an invoice a finding can be pinned to, in page order ("line:N" besides).
ANCHORS = ("general", "header", "seller", "buyer", "parties", "references", "lines",
           "allowances", "vat", "totals", "payment", "notes", "documents")

_BY_GROUP = {
    "BG-1": "notes", "BG-2": "header", "BG-3": "references",
    "BG-4": "seller", "BG-5": "seller", "BG-6": "seller",
    "BG-7": "buyer", "BG-8": "buyer", "BG-9": "buyer",
    "BG-10": "parties", "BG-11": "parties", "BG-12": "parties",
    "BG-13": "references", "BG-14": "references", "BG-15": "references",
    "BG-16": "payment", "BG-17": "payment", "BG-18": "payment", "BG-19": "payment",
    "BG-20": "allowances", "BG-21": "allowances", "BG-22": "totals", "BG-23": "vat",
    "BG-24": "documents",
}
# EN 16931 business terms by number range (the standard numbers them group by group).
_BY_TERM: tuple[tuple[int, int, str], ...] = (
    (1, 9, "header"), (10, 19, "references"), (20, 20, "payment"), (21, 22, "notes"),
    (23, 24, "header"), (25, 26, "references"), (27, 43, "seller"), (44, 58, "buyer"),
    (59, 69, "parties"), (70, 80, "references"), (81, 91, "payment"), (92, 105, "allowances"),
    (106, 115, "totals"), (116, 121, "vat"), (122, 125, "documents"), (126, 161, "lines"),
)
_LINE = re.compile(r"^BG-25\[(\d+)\]$")
_NUMBER = re.compile(r"^B([TG])-(\d+)$")


def anchor(finding: Finding) -> str:
    """Which block of the invoice a finding concerns: `line:3` for BG-25[3], `totals` for
    BG-22 or BT-106..115, ..., `general` when it names no business term or group."""
    path = term_path(short_xpath(finding.location.xpath or ""), finding.business_terms)
    if path:
        groups = path.split(" / ")
        for group in groups:
            line = _LINE.match(group)
            if line:
                return f"line:{line.group(1)}"
            if group.split("[")[0] in ("BG-25", "BG-26", "BG-27", "BG-28", "BG-29", "BG-30",
                                       "BG-31", "BG-32"):
                return "lines"
        first = _BY_GROUP.get(groups[0].split("[")[0])
        if first:
            return first
    for term in finding.business_terms:
        match = _NUMBER.match(term)
        if not match:
            continue
        number = int(match.group(2))
        if match.group(1) == "G":
            if 25 <= number <= 32:
                return "lines"
            if f"BG-{number}" in _BY_GROUP:
                return _BY_GROUP[f"BG-{number}"]
            continue
        for low, high, block in _BY_TERM:
            if low <= number <= high:
                return block
    return "general"


# -- one file ---------------------------------------------------------------------------------


@dataclass
class _Invoice:
    """What the report shows of one invoice: its words, and its model for the values."""

    document: Document | None = None
    error: str | None = None
    read: Read | None = field(default=None, repr=False)

    def values(self, terms: list[str], line: int | None = None) -> list[str]:
        """What the invoice says for the terms (BT-n); of line `line` only (1-based) when the
        finding is pinned to one line."""
        wanted = [t for t in terms if t.startswith("BT-")]
        if not wanted or self.read is None or self.read.data is None:
            return []
        lines = self.read.data.get("BG-25")
        if line is not None and isinstance(lines, list) and 0 < line <= len(lines):
            return [describe_term(lines[line - 1], term) for term in wanted]
        table = self.read.term_values(wanted)
        return [table[term].text() for term in wanted]


def _read(report: Report, lang: Language) -> _Invoice | None:
    """The invoice of a report in words; None when there is none to read (an unreadable input,
    standard input, a lifecycle message). The invoice is read once per run for every report
    (values.read_model)."""
    if not readable(report):
        return None
    if report.path == STDIN_NAME:
        return _Invoice(error=_LABELS[lang]["stdin"])
    from ..render.content import describe

    entry = read_model(report, invoice=True)
    if entry is None:  # gone since it was validated
        return _Invoice(error=f"{_LABELS[lang]['no_model']}: {_LABELS[lang]['gone']}")
    if entry.invoice is None:
        return _Invoice(error=f"{_LABELS[lang]['no_model']}: {entry.error}")
    try:
        return _Invoice(document=describe(entry.invoice, lang), read=entry)
    except Exception as exc:  # an invoice the words cannot be made of: the report goes on
        reason = str(exc) or type(exc).__name__
        return _Invoice(error=f"{_LABELS[lang]['no_model']}: {reason}")


def _split(report: Report) -> dict[str, list[Group]]:
    """The report's findings grouped by rule (most important first), per block."""
    pinned: dict[str, list[Group]] = {}
    for group in group_findings(report):
        by_anchor: dict[str, Group] = {}
        for finding in group.findings:
            where = anchor(finding)
            if where in by_anchor:
                by_anchor[where].findings.append(finding)
            else:
                by_anchor[where] = Group(finding, report)
        for where, sub in by_anchor.items():
            pinned.setdefault(where, []).append(sub)
    return pinned


class _FileView:
    """Builds one file's row and block."""

    def __init__(self, index: int, report: Report, lang: Language, folder: str = "") -> None:
        self.index = index
        self.folder = folder  # the batch's common folder, left out of the summary table
        self.report = report
        self.lang: Language = lang
        self.labels = _LABELS[lang]
        self.invoice = _read(report, lang)

    def row(self) -> str:
        from ..render.content import Totals
        from ..render.labels import text

        report, labels = self.report, self.labels
        verdict = _verdict(report)
        kind = ", ".join(p for p in (report.container, report.syntax, report.profile) if p)
        counts = "".join(
            f'<td class="num">{len(report.by_severity(s)) if report.error is None else ""}</td>'
            for s in SEVERITIES
        )
        number = seller = due = ""
        document = self.invoice.document if self.invoice else None
        if document is not None:
            number, seller = document.number, document.author
            for section in document.sections:
                if isinstance(section, Totals):
                    due = next((value for label, value, _ in section.rows
                                if label == text("amount_due", self.lang)), "")
        return (
            f'<tr data-verdict="{verdict}"><td><a href="#file-{self.index}" '
            f'title="{_path(report.path)}">{_path(report.path[len(self.folder):])}'
            f'</a></td><td class="{verdict}">{_e(labels[verdict])}</td><td>{_e(kind)}</td>'
            f'<td class="number">{_bdi(number)}</td><td>{_bdi(seller)}</td>'
            f'<td class="num">{_e(due)}</td>'
            f"{counts}</tr>"
        )

    def block(self, open_: bool) -> str:
        report, labels = self.report, self.labels
        verdict = _verdict(report)
        kind = ", ".join(p for p in (report.container, report.syntax, report.profile) if p)
        counts = ", ".join(
            f"{len(report.by_severity(s))} {labels[s]}" for s in SEVERITIES
            if report.by_severity(s)
        ) if report.error is None else ""
        out = [
            f'<details class="file" id="file-{self.index}" data-verdict="{verdict}"'
            f'{" open" if open_ else ""}><summary><span class="badge {verdict}">'
            f'{_e(labels[verdict])}</span> <span class="path">{_path(report.path)}</span> '
            f'<span class="kind">{_e(kind)}</span> <span class="counts">{_e(counts)}</span>'
            '</summary><div class="body">'
        ]
        if report.error is not None:
            out.append(f'<p class="unreadable">{_e(report.error)}</p></div></details>')
            return "".join(out)
        pinned = _split(report)
        document = self.invoice.document if self.invoice else None
        known = self._anchors(document)
        # A finding whose block is not on the page goes to its nearest shown block.
        for where in list(pinned):
            if where not in known:
                fallback = "lines" if where.startswith("line:") and "lines" in known else "general"
                pinned.setdefault(fallback, []).extend(pinned.pop(where))
        out.append(self._general(pinned.pop("general", [])))
        if document is not None:
            out.append(self._invoice(document, pinned))
        elif not report.findings:
            out.append(f"<p>{_e(labels['none'])}</p>")
        out.append(self._checked())
        out.append("</div></details>")
        return "".join(out)

    def _anchors(self, document: Document | None) -> set[str]:
        from ..render.content import Table

        if document is None:
            return {"general"}
        known = {"general", "header", "seller", "buyer", "parties"}
        for section in document.sections:
            key = _section_key(section, self.lang)
            if key:
                known.add(key)
            if key == "lines" and isinstance(section, Table):
                known.update(f"line:{n}" for n in range(1, len(section.rows) + 1))
        return known

    def _general(self, groups: list[Group]) -> str:
        labels = self.labels
        notes = [f'<p class="muted">{_e(labels["note"])}: {_e(w)}</p>'
                 for w in self.report.warnings]
        missing = [f'<p class="invalid">{_e(layer.name)} ({_e(layer.artefact)}) '
                   f'{_e(labels["not_run"])}</p>'
                   for layer in self.report.layers if layer.required and not layer.ran]
        if self.invoice is not None and self.invoice.error is not None:
            notes.append(f'<p class="muted no-data">{_e(labels["no_data"])}: '
                         f"{_e(self.invoice.error)}</p>")
        if not groups and not notes and not missing:
            return ""
        return (f'<div class="general"><h4>{_e(labels["general"])}</h4>'
                + "".join(missing) + "".join(notes) + self._pins(groups) + "</div>")

    def _checked(self) -> str:
        ran = [f"{layer.name} {layer.version}".strip() for layer in self.report.layers
               if layer.ran]
        if not ran:
            return ""
        return f'<p class="muted">{_e(self.labels["checked"])}: {_e(", ".join(ran))}</p>'

    def _pins(self, groups: list[Group], tag: str = "div") -> str:
        if not groups:
            return ""
        return f'<{tag} class="pins">' + "".join(self._finding(g) for g in groups) + f"</{tag}>"

    def _finding(self, group: Group, line: int | None = None) -> str:
        labels, finding = self.labels, group.first
        count = f" ×{group.count}" if group.count > 1 else ""
        out = [
            f'<div class="finding {finding.severity}" data-severity="{finding.severity}" '
            f'data-rule="{_e(finding.rule)}" data-count="{group.count}"><span class="sev">'
            f"{_e(labels[finding.severity])}</span> <b>{_e(finding.rule)}</b>{count} "
            f"<small>[{_e(finding.layer)}]</small>"
        ]
        for message, places in group.by_message(self.lang):
            out.append(f'<p class="msg">{_e(message)}</p>')
            if places:
                out.append('<ul class="loc">' + "".join(
                    f"<li>{_e(labels['at'])} <code>{_e(place)}</code></li>" for place in places
                ) + "</ul>")
        terms = group.terms()
        if terms and finding.severity != "information":
            values = self.invoice.values(terms, line) if self.invoice is not None else []
            shown = "; ".join(values) if values else ", ".join(terms)
            key = "values" if values else "terms"
            out.append(f'<p class="values">{_e(labels[key])}: {_e(shown)}</p>')
        advice = hint(finding.rule, self.lang) if finding.severity != "information" else None
        if advice:
            out.append(f'<p class="hint">{_e(labels["hint"])}: {_e(advice)}</p>')
        out.append("</div>")
        return "".join(out)

    def _invoice(self, document: Document, pinned: dict[str, list[Group]]) -> str:
        out = ['<div class="invoice">', f"<h3>{_bdi(document.title)}</h3>",
               _pairs(document.meta), self._pins(pinned.pop("header", []))]
        out.append('<div class="parties">')
        for party, block in zip(document.parties, ("seller", "buyer"), strict=False):
            out.append(f"<div><h4>{_e(party.heading)}</h4>")
            for n, line in enumerate(party.lines):
                attrs = ' class="name"' if n == 0 else ""
                out.append(f"<p{attrs}>{_bdi(line)}</p>")
            out.append(self._pins(pinned.pop(block, [])) + "</div>")
        out.append("</div>")
        out.append(_pairs(document.party_extra))
        out.append(self._pins(pinned.pop("parties", [])))
        for section in document.sections:
            key = _section_key(section, self.lang)
            out.append(self._section(section, key, pinned))
        # Anything left (a block this invoice does not show) at the end rather than lost.
        for groups in pinned.values():
            out.append(self._pins(groups))
        out.append("</div>")
        return "".join(out)

    def _section(self, section: Pairs | Table | Totals, key: str | None,
                 pinned: dict[str, list[Group]]) -> str:
        from ..render.content import Pairs, Table

        out = [f"<h4>{_e(section.heading)}</h4>"]
        if isinstance(section, Pairs):
            out.append(_pairs(section.rows))
        elif isinstance(section, Table):
            width = len(section.columns)
            out.append("<table><thead><tr>" + "".join(
                f'<th class="{align}">{_e(column)}</th>'
                for column, align in zip(section.columns, section.aligns, strict=True)
            ) + "</tr></thead><tbody>")
            for number, row in enumerate(section.rows, start=1):
                pins = pinned.pop(f"line:{number}", []) if key == "lines" else []
                flagged = ' class="flagged"' if pins else ""
                out.append(f'<tr{flagged} id="file-{self.index}-line-{number}">' + "".join(
                    f'<td class="{align}">{_bdi(value)}</td>'
                    for value, align in zip(row, section.aligns, strict=True)
                ) + "</tr>")
                if pins:
                    out.append(f'<tr class="pins"><td colspan="{width}">'
                               + "".join(self._finding(g, number) for g in pins)
                               + "</td></tr>")
            out.append("</tbody></table>")
        else:
            out.append('<table class="totals"><tbody>')
            for label, value, strong in section.rows:
                attrs = ' class="strong"' if strong else ""
                out.append(f'<tr{attrs}><td>{_e(label)}</td><td class="RIGHT">{_e(value)}'
                           "</td></tr>")
            out.append("</tbody></table>")
        if key:
            out.append(self._pins(pinned.pop(key, [])))
        return "".join(out)


def _pairs(rows: tuple[tuple[str, str], ...]) -> str:
    if not rows:
        return ""
    return ('<dl class="pairs">'
            + "".join(f"<dt>{_e(label)}</dt><dd>{_bdi(value)}</dd>" for label, value in rows)
            + "</dl>")


def _section_key(section: Pairs | Table | Totals, lang: Language) -> str | None:
    """Which block a section of the described invoice is (content.describe names them by their
    heading, in the reader's language)."""
    from ..render.content import Totals
    from ..render.labels import text

    if isinstance(section, Totals):
        return "totals"
    heading = section.heading
    for key, label in (("lines", "lines"), ("allowances", "allowances_charges"),
                       ("vat", "vat_breakdown"), ("references", "references"),
                       ("payment", "payment"), ("notes", "notes"),
                       ("documents", "documents")):
        if heading == text(label, lang) or heading.startswith(text(label, lang) + " ("):
            return key
    return None


Job = tuple[int, Report, "Language", bool, str]


def _file_html(job: Job) -> tuple[str, str]:
    """One file's summary row and block."""
    index, report, lang, open_, folder = job
    view = _FileView(index, report, lang, folder)
    return view.row(), view.block(open_)


def _file_html_shipped(job: Job) -> tuple[str, str, Read | None]:
    """A worker's unit of work: one file's row and block, and what it read of the invoice for
    the other reports of the run (the values of every term its findings name, or the reason it
    cannot be read; not the Invoice, which costs more to send than to read)."""
    row, block = _file_html(job)
    entry = read_model(job[1]) if readable(job[1]) and job[1].path != STDIN_NAME else None
    if entry is None:
        return row, block, None
    if entry.invoice is not None:
        entry.term_values(report_terms(job[1]))
    return row, block, Read(error=entry.error, values=entry.values)


def _can_fork() -> bool:
    """Whether worker processes can be forked safely: fork copies one thread, so a process
    running others (or holding Saxon's native runtime, validating in-process) is not forked."""
    return ("fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1 and "saxonche" not in sys.modules)


def _files_html(jobs: list[Job], workers: int | None
                ) -> Iterator[tuple[str, str]]:
    count = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if count > 1 and len(jobs) >= PARALLEL_FROM and _can_fork():
        # Forked workers start in milliseconds with everything imported; spawned ones would
        # spend longer importing facturflow than reading a typical batch. What they read and
        # word invoices with is imported here, once, not in each of them.
        from .. import pdf, read  # noqa: F401
        from ..render import content  # noqa: F401

        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
                # Collected before anything is yielded: a pool that breaks half-way is
                # replaced by this process from the start, never giving a file twice.
                done = list(pool.map(_file_html_shipped, jobs,
                                     chunksize=max(1, len(jobs) // (count * 8))))
        except (OSError, RuntimeError):  # no processes here (a sandbox): do it in this one
            pass
        else:
            for job, (row, block, entry) in zip(jobs, done, strict=True):
                if entry is not None:  # the other reports of this run need not read it again
                    remember(job[1], entry)
                yield row, block
            return
    yield from map(_file_html, jobs)


# -- the page ---------------------------------------------------------------------------------


def render(reports: Iterable[Report], *, lang: str = "en", workers: int | None = None) -> str:
    """The HTML document as text; `lang` en or fr; `workers` processes read the invoices of a
    large batch (default: one per CPU, at most 8; 1 reads them here)."""
    from ..render.labels import text

    batch = list(reports)
    language: Language = "fr" if lang == "fr" else "en"
    labels = _LABELS[language]
    verdicts = Counter(_verdict(r) for r in batch)
    readable = [r for r in batch if r.error is None]
    severities = {s: sum(len(r.by_severity(s)) for r in readable) for s in SEVERITIES}
    rules = Counter(f.rule for r in readable for f in r.findings)
    files = Counter(rule for r in readable for rule in {f.rule for f in r.findings})
    open_ = len(batch) <= OPEN_UP_TO
    folder = common_folder([report.path for report in batch])
    jobs: list[Job] = [(index, report, language, open_, folder)
                       for index, report in enumerate(batch)]
    rows, blocks = [], []
    for row, block in _files_html(jobs, workers):
        rows.append(row)
        blocks.append(block)
    out: list[str] = [
        "<!DOCTYPE html>",
        f'<html lang="{language}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(labels['title'])}</title><style>{_CSS}</style></head><body>",
        f'<header class="top"><h1>{_e(labels["title"])}</h1><p id="totals">'
        + ", ".join(f'<span data-count="{v}">{verdicts.get(v, 0)} {_e(labels[v])}</span>'
                    for v in ("valid", "invalid", "unreadable"))
        + f" / {len(batch)} — "
        + ", ".join(f"{severities[s]} {_e(labels[s])}" for s in SEVERITIES)
        + "</p></header>",
    ]
    if files:
        out.append(f"<h2>{_e(labels['top'])}</h2><table id=\"top-rules\"><tr>"
                   f"<th>{_e(labels['rule'])}</th><th class=\"num\">{_e(labels['files'])}</th>"
                   f"<th class=\"num\">{_e(labels['findings'])}</th></tr>")
        for rule in sorted(files, key=lambda r: (-files[r], -rules[r], r))[:10]:
            out.append(f'<tr><td>{_e(rule)}</td><td class="num">{files[rule]}</td>'
                       f'<td class="num">{rules[rule]}</td></tr>')
        out.append("</table>")
    out.append(
        f"<h2>{_e(labels['files'])}</h2>"
        + (f'<p id="folder">{_e(labels["folder"])}: <code>{_path(folder)}</code></p>'
           if folder else "")
        + "<div class=\"wide\"><table id=\"files\"><thead><tr>"
        f"<th>{_e(labels['file'])}</th><th>{_e(labels['verdict'])}</th>"
        f"<th>{_e(labels['kind'])}</th><th>{_e(labels['number'])}</th>"
        f"<th>{_e(labels['seller'])}</th><th class=\"num\">{_e(labels['due'])}</th>"
        + "".join(f'<th class="num" title="{_e(labels[s])}">{_e(short)}</th>'
                  for s, short in zip(SEVERITIES, labels["short"].split("|"), strict=True))
        + "</tr></thead><tbody>"
    )
    out.extend(rows)
    out.append("</tbody></table></div>")
    # The filters: hidden until the script runs (without it they could do nothing).
    out.append(f'<p id="nojs" class="muted">{_e(labels["nojs"])}</p>')
    out.append(f'<form id="filters" hidden><b>{_e(labels["filter"])}:</b> ')
    for severity in SEVERITIES:
        out.append(f'<label><input type="checkbox" data-severity="{severity}" checked> '
                   f'{_e(labels[severity])} ({severities[severity]})</label>')
    out.append(f'<label>{_e(labels["rule"])} <select id="rule-filter">'
               f'<option value="">{_e(labels["all"])}</option>')
    for rule, count in sorted(rules.items(), key=lambda item: (-item[1], item[0])):
        out.append(f'<option value="{_e(rule)}">{_e(rule)} ({count})</option>')
    out.append(f'</select></label> <span id="shown-count">{sum(severities.values())}</span> '
               f'{_e(labels["shown"])} <button type="button" id="expand">'
               f'{_e(labels["expand"])}</button><button type="button" id="collapse">'
               f'{_e(labels["collapse"])}</button></form>')
    out.append('<main id="reports">')
    out.extend(blocks)
    out.append("</main>")
    out.append(f"<footer><p>{_e(labels['generated'])} {_e(__version__)} — "
               f"{_e(text('footer_view', language))}</p></footer>")
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"
