"""The human-readable report: one block per file, then, for a batch, a table and a summary line.

Within a file, findings are grouped: one message per rule (and text), with a count and every
location listed compactly under it; fatal groups first, then by layer (xml, xsd, Schematron, PDF,
selection). `mode="summary"` gives one line per file, `mode="quiet"` only the invalid files.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal, get_args

from ..validation.report import SEVERITIES, Finding, Layer, LayerRun, Report
from .hints import hint
from .termpath import finding_term_path
from .termpath import short_xpath as short_xpath  # re-exported: html.py reads it here
from .values import InvoiceValues

_SEVERITY_STYLE = {"fatal": "bold red", "warning": "yellow", "information": "cyan"}
_WIDTH = max(len(s) for s in SEVERITIES)
_INDENT = " " * (_WIDTH + 4)
# Layer order within a severity: what breaks first (the XML, the schema) before the business
# rules, the PDF, and the notes on which rule sets were chosen.
_LAYER_ORDER: dict[str, int] = {layer: rank for rank, layer in enumerate(get_args(Layer))}
_SEVERITY_ORDER: dict[str, int] = {severity: rank for rank, severity in enumerate(SEVERITIES)}
# How many files a batch needs before the table of verdicts and rules is printed.
TABLE_FROM = 2
TOP_RULES = 10

Mode = Literal["full", "summary", "quiet"]
MODES: tuple[str, ...] = get_args(Mode)


def _safe(text: str) -> str:
    """One line without control characters: messages can quote invoice content, and an escape
    sequence in it must not reach the user's terminal."""
    if not text.isprintable():  # rare: the character-by-character pass only then
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())


class Text:
    """A line of styled pieces; rendered plain, or through rich only when colour is wanted
    (importing rich costs a cold `facturflow validate` about 0.1 s)."""

    def __init__(self, text: str = "", style: str = "") -> None:
        self.pieces: list[tuple[str, str]] = [(text, style)] if text else []

    def append(self, text: str, style: str = "") -> None:
        self.pieces.append((text, style))

    def append_text(self, other: Text) -> None:
        self.pieces.extend(other.pieces)

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.pieces)

    def __str__(self) -> str:
        return self.plain

    def to_rich(self, style: str = "") -> Any:
        from rich.text import Text as RichText

        line = RichText(style=style)
        for text, piece_style in self.pieces:
            line.append(text, style=piece_style or None)
        return line


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _status(report: Report) -> Text:
    if report.error is not None:
        return Text("UNREADABLE", "bold magenta")
    return Text("VALID", "bold green") if report.ok else Text("INVALID", "bold red")


def _header(report: Report) -> Text:
    line = Text()
    line.append(_safe(report.path), style="bold")
    line.append(": ")
    line.append_text(_status(report))
    described = [p for p in (report.container, report.syntax, report.profile) if p]
    if described:
        line.append(f"  ({', '.join(described)})", style="dim")
    if report.cached:
        line.append("  [cached]", style="dim")
    return line


def location(report: Report, finding: Finding, lang: str | None = None) -> str:
    """A finding's XPath and line for people, in English or French (`lang`): for a PDF, the
    line is said to be one of the embedded XML (Report.where, in English, for the machine
    reports)."""
    if lang != "fr":
        return report.where(finding)
    xpath, line = finding.location.xpath, finding.location.line
    parts = [xpath] if xpath else []
    if line:
        if report.container == "pdf":
            parts.append(f"ligne {line} du fichier incorporé {report.attachment}"
                         if report.attachment else f"ligne {line} du XML incorporé")
        else:
            parts.append(f"ligne {line}")
    return ", ".join(parts)


class Group:
    """The findings of one rule with one message in one file: shown once, with every location."""

    def __init__(self, first: Finding, report: Report) -> None:
        self.first = first
        self.report = report
        self.findings: list[Finding] = [first]

    @property
    def count(self) -> int:
        return len(self.findings)

    def by_message(self, lang: str | None = None) -> list[tuple[str, list[str]]]:
        """Each distinct message (usually one) with its distinct locations, in order of
        appearance, shortened for people; the line of a PDF's finding said in `lang`."""
        messages: dict[str, dict[str, None]] = {}
        for finding in self.findings:
            where = _safe(short_xpath(location(self.report, finding, lang)))
            # The business-term path first, for readers who know EN 16931 rather than XML.
            terms = finding_term_path(finding.location.xpath, finding.business_terms)
            if terms and where:
                where = f"{terms} — {where}"
            places = messages.setdefault(_safe(finding.message), {})
            if where:
                places.setdefault(where, None)
        return [(message, list(places)) for message, places in messages.items()]

    def assert_ids(self) -> list[str]:
        """The Schematron assert ids behind the rule, when they differ from it."""
        ids = dict.fromkeys(
            f.assert_id for f in self.findings if f.assert_id and f.assert_id != f.rule
        )
        return [assert_id for assert_id in ids if assert_id]

    def terms(self) -> list[str]:
        seen: dict[str, None] = {}
        for finding in self.findings:
            for term in finding.business_terms:
                seen.setdefault(term, None)
        return list(seen)


def group_findings(report: Report) -> list[Group]:
    """A report's findings grouped by (severity, layer, rule), the most important first: fatal
    before warning before information, then by layer, then in order of appearance."""
    groups: dict[tuple[str, str, str], Group] = {}
    for finding in report.findings:
        key = (finding.severity, finding.layer, finding.rule)
        if key in groups:
            groups[key].findings.append(finding)
        else:
            groups[key] = Group(finding, report)
    ordered = list(groups.values())
    ordered.sort(
        key=lambda g: (_SEVERITY_ORDER[g.first.severity], _LAYER_ORDER.get(g.first.layer, 99))
    )
    return ordered


def _group_lines(
    group: Group, values: InvoiceValues | None = None, lang: str | None = None
) -> list[Text]:
    finding = group.first
    first = Text("  ")
    first.append(finding.severity.ljust(_WIDTH), style=_SEVERITY_STYLE[finding.severity])
    first.append("  ")
    first.append(_safe(finding.rule), style="bold")
    assert_ids = group.assert_ids()
    if assert_ids:
        first.append(f" ({_safe(', '.join(assert_ids))})", style="dim")
    first.append(f"  [{finding.layer}]", style="dim")
    if group.count > 1:
        first.append(f"  x{group.count}", style="bold")
    lines = [first]
    for message, places in group.by_message(lang):
        lines.append(Text(_INDENT + message))
        # Every location under its message, one a line, aligned after the first's "at ".
        for index, where in enumerate(places):
            lines.append(Text(f"{_INDENT}{'at ' if index == 0 else '   '}{where}", style="dim"))
    terms = group.terms()
    if terms:
        lines.append(Text(f"{_INDENT}terms: {', '.join(terms)}", style="dim"))
        # What the invoice says for those terms (fatal and warning findings only).
        wanted = values is not None and finding.severity != "information"
        read = values.terms(group.report, terms) if values is not None and wanted else []
        if read:
            lines.append(Text(f"{_INDENT}values: {_safe('; '.join(read))}"))
    advice = hint(finding.rule, lang) if lang and finding.severity != "information" else None
    if advice:
        lines.append(Text(f"{_INDENT}{'conseil' if lang == 'fr' else 'hint'}: {advice}", "green"))
    return lines


def report_lines(
    report: Report, values: InvoiceValues | None = None, lang: str | None = None
) -> list[Text]:
    """The lines of one file's block: findings grouped by rule, fatal first."""
    header = _header(report)
    if report.error is not None:
        # One line per unreadable input, "PATH: UNREADABLE: error: PROBLEM", easy to grep in CI.
        header.append(f": error: {_safe(report.error)}", style="magenta")
        return [header]
    lines = [header]
    for warning in report.warnings:
        lines.append(Text(f"  note: {_safe(warning)}", style="dim"))
    for group in group_findings(report):
        lines.extend(_group_lines(group, values, lang))
    # A required layer that did not run makes the file invalid even without a finding: say so.
    for layer in report.layers:
        if layer.required and not layer.ran:
            lines.append(Text(f"  layer {layer.name} ({layer.artefact}) did not run", style="red"))
    if report.layers:
        ran = ", ".join(_layer_label(layer) for layer in report.layers if layer.ran)
        if ran:
            lines.append(Text(f"  checked: {ran}", style="dim"))
    lines.extend(Text(f"  {line}", style="dim") for line in selection_lines(report))
    return lines


def _layer_label(layer: LayerRun) -> str:
    label = f"{layer.name} {layer.version}".strip()
    if layer.sha256:
        label += f" ({_safe(layer.artefact)} sha256:{layer.sha256[:12]})"
    return label


def selection_lines(report: Report) -> list[str]:
    """Why these rule sets: the invoice's scope and the build of the French rules."""
    selection = report.selection or {}
    lines: list[str] = []
    scope = selection.get("scope")
    if isinstance(scope, dict):
        # The families the invoice is in the scope of; the ones left out are said by their
        # RULES-NOT-IN-SCOPE findings.
        families = [
            f"{title} ({_safe(str(scope[key]['reason']))})"
            for key, title in (
                ("french", "French"),
                ("xrechnung", "XRechnung"),
                ("peppol", "Peppol"),
            )
            if isinstance(scope.get(key), dict) and scope[key].get("in_scope")
        ]
        lines.append("scope: " + ("; ".join(families) or "not French, XRechnung or Peppol"))
    french = selection.get("french_rules")
    if isinstance(french, dict):
        when = f" as of {french['as_of']}" if french.get("as_of") else ""
        lines.append(
            f"French rules: {french['build']} build{when} ({_safe(str(french['source']))})"
        )
    return lines


def summary(reports: list[Report]) -> Text:
    """One line: how many files were valid, invalid, unreadable, and the findings by severity."""
    unreadable = sum(1 for r in reports if r.error is not None)
    valid = sum(1 for r in reports if r.ok)
    invalid = len(reports) - valid - unreadable
    # Only findings shown in the blocks: an unreadable file shows its error, not its finding.
    readable = [r for r in reports if r.error is None]
    counts = {s: sum(len(r.by_severity(s)) for r in readable) for s in SEVERITIES}
    line = Text(f"{_plural(len(reports), 'file')}: ")
    line.append(f"{valid} valid", style="green" if valid else "")
    line.append(", ")
    line.append(f"{invalid} invalid", style="red" if invalid else "")
    line.append(", ")
    line.append(f"{unreadable} unreadable", style="magenta" if unreadable else "")
    line.append(
        f"; {_plural(counts['fatal'], 'fatal finding')}, {_plural(counts['warning'], 'warning')}"
        f", {counts['information']} information"
    )
    cached = sum(1 for r in reports if r.cached)
    if cached:  # the verdict cache (validation/verdict_cache.py) gave these reports
        line.append(f"; {cached} from the verdict cache", style="dim")
    return line


def file_line(report: Report) -> Text:
    """One line for one file: verdict, what it is, counts by severity, the fatal rules."""
    line = _header(report)
    if report.error is not None:
        line.append(f": error: {_safe(report.error)}", style="magenta")
        return line
    counts = [
        f"{len(report.by_severity(s))} {s}" for s in SEVERITIES if report.by_severity(s)
    ]
    if counts:
        line.append(f"  {', '.join(counts)}")
    fatal_rules = list(
        dict.fromkeys(g.first.rule for g in group_findings(report) if g.first.fatal)
    )
    if fatal_rules:
        shown = ", ".join(_safe(rule) for rule in fatal_rules[:5])
        more = f" (+{len(fatal_rules) - 5} more)" if len(fatal_rules) > 5 else ""
        line.append(f": {shown}{more}", style="bold")
    elif not report.ok:
        missing = [layer.name for layer in report.layers if layer.required and not layer.ran]
        line.append(f": layers did not run: {', '.join(missing)}", style="red")
    return line


def table_lines(reports: list[Report]) -> list[Text]:
    """The batch table: files by verdict, and the most frequent rules (findings, files)."""
    unreadable = sum(1 for r in reports if r.error is not None)
    valid = sum(1 for r in reports if r.ok)
    invalid = len(reports) - valid - unreadable
    width = max(len(str(len(reports))), 5)
    lines = [Text("verdict".ljust(12) + "files".rjust(width), "bold")]
    for name, count, style in (
        ("valid", valid, "green"),
        ("invalid", invalid, "red"),
        ("unreadable", unreadable, "magenta"),
    ):
        lines.append(Text(name.ljust(12) + str(count).rjust(width), style if count else ""))
    lines.append(Text("total".ljust(12) + str(len(reports)).rjust(width)))
    findings: Counter[tuple[str, str]] = Counter()
    files: Counter[tuple[str, str]] = Counter()
    for report in reports:
        if report.error is not None:
            continue  # its findings restate the error counted above
        # The selection notes say which rule sets were chosen, not what is wrong: left out.
        judged = [f for f in report.findings if f.layer != "selection"]
        for finding in judged:
            findings[(finding.rule, finding.severity)] += 1
        for key in {(f.rule, f.severity) for f in judged}:
            files[key] += 1
    if findings:
        # Most files first (what most invoices get wrong), then most findings, then the id.
        top = sorted(findings, key=lambda k: (-files[k], -findings[k], _SEVERITY_ORDER[k[1]], k[0]))
        top = top[:TOP_RULES]
        rule_width = max(len("rule"), *(len(_safe(rule)) for rule, _ in top))
        lines.append(Text())
        lines.append(
            Text(
                f"{'rule'.ljust(rule_width)}  {'severity'.ljust(_WIDTH)}  "
                f"{'files'.rjust(width)}  findings",
                "bold",
            )
        )
        for entry in top:
            rule, level = entry
            row = Text(_safe(rule).ljust(rule_width) + "  ")
            row.append(level.ljust(_WIDTH), _SEVERITY_STYLE[level])
            row.append(f"  {str(files[entry]).rjust(width)}  {str(findings[entry]).rjust(8)}")
            lines.append(row)
    return lines


def _lines(batch: list[Report], mode: str, values: bool = True, lang: str = "en") -> list[Text]:
    """Every line of the report, blank separators included."""
    if mode not in MODES:
        raise ValueError(f"unknown text mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "quiet":
        # Only what needs attention, one line each, nothing else: for scripts and pre-commit.
        return [file_line(report) for report in batch if not report.ok]
    lines: list[Text] = []
    if mode == "summary":
        lines.extend(file_line(report) for report in batch)
        if batch:
            lines.append(Text())
    else:
        reader = InvoiceValues() if values else None
        for report in batch:
            lines.extend([*report_lines(report, reader, lang), Text()])
    if len(batch) >= TABLE_FROM:
        lines.extend([*table_lines(batch), Text()])
    lines.append(summary(batch))
    return lines


def render(
    reports: Iterable[Report],
    *,
    colour: bool = False,
    mode: str = "full",
    values: bool = True,
    lang: str = "en",
) -> str:
    """The text report; ANSI colour (via rich) only when `colour` is True.

    `mode`: "full" (every file's grouped findings), "summary" (one line per file) or "quiet"
    (only the files that are not valid, one line each, and no totals). With `values`, the full
    report reads each invoice with findings on business terms again (through the EN 16931
    model) to show those terms' values. `lang` (en or fr) is the language of the fix hints
    (facturflow.reports.hints); the official messages stay as published.
    """
    lines = _lines(list(reports), mode, values, lang)
    if not lines:
        return ""
    if not colour:
        return "\n".join(line.plain for line in lines) + "\n"
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=True,
        color_system="standard",
        highlight=False,
        soft_wrap=True,
        emoji=False,
        markup=False,
        width=200,
    )
    for line in lines:
        console.print(line.to_rich())
    return buffer.getvalue()
