"""The human-readable report: one block per file, findings by severity, then a summary line."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import Any

from ..validate.report import SEVERITIES, Finding, LayerRun, Report

_SEVERITY_STYLE = {"fatal": "bold red", "warning": "yellow", "information": "cyan"}
_WIDTH = max(len(s) for s in SEVERITIES)


def _safe(text: str) -> str:
    """One line without control characters: messages can quote invoice content, and an escape
    sequence in it must not reach the user's terminal."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


_NAMESPACE_TEST = re.compile(r"\*:([\w.-]+)\[namespace-uri\(\)='[^']*'\]")


def short_xpath(text: str) -> str:
    """`/*:Name[namespace-uri()='urn:...'][1]` (as Schematron writes locations) to `/Name[1]`."""
    return _NAMESPACE_TEST.sub(r"\1", text)


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
    return line


def _finding_lines(finding: Finding) -> list[Text]:
    first = Text("  ")
    first.append(finding.severity.ljust(_WIDTH), style=_SEVERITY_STYLE[finding.severity])
    first.append("  ")
    first.append(_safe(finding.rule), style="bold")
    if finding.assert_id and finding.assert_id != finding.rule:
        first.append(f" ({_safe(finding.assert_id)})", style="dim")
    first.append(f"  [{finding.layer}]", style="dim")
    lines = [first]
    indent = " " * (_WIDTH + 4)
    lines.append(Text(indent + _safe(finding.message)))
    where = _safe(short_xpath(str(finding.location)))
    if where:
        lines.append(Text(f"{indent}at {where}", style="dim"))
    if finding.business_terms:
        lines.append(Text(f"{indent}terms: {', '.join(finding.business_terms)}", style="dim"))
    return lines


def report_lines(report: Report) -> list[Text]:
    """The lines of one file's block, fatal findings first."""
    header = _header(report)
    if report.error is not None:
        # One line per unreadable input, "PATH: UNREADABLE: error: PROBLEM", easy to grep in CI.
        header.append(f": error: {_safe(report.error)}", style="magenta")
        return [header]
    lines = [header]
    for warning in report.warnings:
        lines.append(Text(f"  note: {_safe(warning)}", style="dim"))
    order = {severity: rank for rank, severity in enumerate(SEVERITIES)}
    for finding in sorted(report.findings, key=lambda f: order[f.severity]):
        lines.extend(_finding_lines(finding))
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
    return line


def render(reports: Iterable[Report], *, colour: bool = False) -> str:
    """The text report; ANSI colour (via rich) only when `colour` is True."""
    batch = list(reports)
    blocks = [report_lines(report) for report in batch]
    if not colour:
        lines = [line.plain for block in blocks for line in [*block, Text()]]
        return "\n".join([*lines, summary(batch).plain]) + "\n"
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
    for index, block in enumerate(blocks):
        if index:
            console.print()
        for line in block:
            console.print(line.to_rich())
    if batch:
        console.print()
    console.print(summary(batch).to_rich())
    return buffer.getvalue()
