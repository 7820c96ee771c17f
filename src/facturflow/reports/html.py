"""The HTML report: one self-contained file a person opens in a browser (no network: inline CSS
and script, a Content-Security-Policy that forbids anything else). A summary table of the files,
then each file's findings grouped by rule as in the text report, with the fix hints; findings
can be filtered by severity and rule. Labels in English or French (`lang`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from html import escape

from .. import __version__
from ..validate.report import SEVERITIES, Report
from .hints import hint
from .termpath import term_path
from .text import group_findings, short_xpath

_LABELS = {
    "en": {
        "title": "facturflow validation report",
        "files": "Files",
        "file": "File",
        "verdict": "Verdict",
        "kind": "Container, syntax, profile",
        "valid": "valid",
        "invalid": "invalid",
        "unreadable": "unreadable",
        "filter": "Show",
        "rule": "Rule",
        "all": "all rules",
        "at": "at",
        "terms": "terms",
        "hint": "hint",
        "none": "No finding.",
        "generated": "Written by facturflow",
    },
    "fr": {
        "title": "Rapport de validation facturflow",
        "files": "Fichiers",
        "file": "Fichier",
        "verdict": "Verdict",
        "kind": "Conteneur, syntaxe, profil",
        "valid": "valide",
        "invalid": "invalide",
        "unreadable": "illisible",
        "filter": "Afficher",
        "rule": "Règle",
        "all": "toutes les règles",
        "at": "à",
        "terms": "termes",
        "hint": "conseil",
        "none": "Aucune anomalie.",
        "generated": "Produit par facturflow",
    },
}

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
.valid{color:#176b2c}.invalid{color:#b00020}.unreadable{color:#7b1fa2}
section{border-top:1px solid #ddd;margin-top:1em;padding-top:.5em}
.finding{margin:.4em 0 .4em 1em;padding:.3em .6em;border-left:4px solid #999}
.finding.fatal{border-color:#b00020}.finding.warning{border-color:#e6a100}
.finding.information{border-color:#2979ff}
.sev{font-weight:bold;text-transform:uppercase;font-size:.8em}
.loc,.terms{color:#555;font-size:.9em}.hint{color:#176b2c}
code{font-size:.9em;word-break:break-all}
.hidden{display:none}
"""

# Filtering: severity checkboxes and a rule list; a finding shows when both allow it.
_SCRIPT = """
(function(){
  function apply(){
    var shown={};
    document.querySelectorAll('input[data-severity]').forEach(function(box){
      shown[box.dataset.severity]=box.checked;});
    var rule=document.getElementById('rule-filter').value;
    document.querySelectorAll('.finding').forEach(function(f){
      var ok=shown[f.dataset.severity]&&(!rule||f.dataset.rule===rule);
      f.classList.toggle('hidden',!ok);});
  }
  document.querySelectorAll('input[data-severity],#rule-filter').forEach(function(el){
    el.addEventListener('change',apply);});
  apply();
})();
"""


def _verdict(report: Report) -> str:
    if report.error is not None:
        return "unreadable"
    return "valid" if report.ok else "invalid"


def render(reports: Iterable[Report], *, lang: str = "en") -> str:
    """The HTML document as text."""
    batch = list(reports)
    labels = _LABELS.get(lang, _LABELS["en"])
    verdicts = Counter(_verdict(r) for r in batch)
    rules = Counter(f.rule for r in batch if r.error is None for f in r.findings)
    out: list[str] = [
        "<!DOCTYPE html>",
        f'<html lang="{escape(lang)}"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(labels['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(labels['title'])}</h1>",
        "<p id=\"totals\">"
        + ", ".join(
            f'<span class="{v}">{verdicts.get(v, 0)} {escape(labels[v])}</span>'
            for v in ("valid", "invalid", "unreadable")
        )
        + f" / {len(batch)}</p>",
        f"<h2>{escape(labels['files'])}</h2>",
        f"<table id=\"files\"><tr><th>{escape(labels['file'])}</th>"
        f"<th>{escape(labels['verdict'])}</th><th>{escape(labels['kind'])}</th>"
        + "".join(f"<th>{s}</th>" for s in SEVERITIES)
        + "</tr>",
    ]
    for index, report in enumerate(batch):
        verdict = _verdict(report)
        kind = ", ".join(p for p in (report.container, report.syntax, report.profile) if p)
        counts = "".join(f"<td>{len(report.by_severity(s))}</td>" for s in SEVERITIES)
        out.append(
            f'<tr data-verdict="{verdict}"><td><a href="#file-{index}">{escape(report.path)}</a>'
            f'</td><td class="{verdict}">{escape(labels[verdict])}</td>'
            f"<td>{escape(kind)}</td>{counts}</tr>"
        )
    out.append("</table>")
    # Filters.
    out.append(f'<form id="filters" onsubmit="return false"><b>{escape(labels["filter"])}:</b> ')
    for severity in SEVERITIES:
        out.append(
            f'<label><input type="checkbox" data-severity="{severity}" checked> '
            f"{severity}</label> "
        )
    out.append(f'<label>{escape(labels["rule"])} <select id="rule-filter">'
               f'<option value="">{escape(labels["all"])}</option>')
    for rule, count in sorted(rules.items(), key=lambda item: (-item[1], item[0])):
        out.append(f'<option value="{escape(rule)}">{escape(rule)} ({count})</option>')
    out.append("</select></label></form>")
    for index, report in enumerate(batch):
        out.extend(_file_section(index, report, labels, lang))
    out.append(f"<footer><p>{escape(labels['generated'])} {escape(__version__)}</p></footer>")
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


def _file_section(index: int, report: Report, labels: dict[str, str], lang: str) -> list[str]:
    verdict = _verdict(report)
    out = [
        f'<section id="file-{index}" data-verdict="{verdict}">',
        f'<h3>{escape(report.path)}: <span class="{verdict}">{escape(labels[verdict])}</span>'
        "</h3>",
    ]
    if report.error is not None:
        out.append(f'<p class="unreadable">{escape(report.error)}</p></section>')
        return out
    groups = group_findings(report)
    if not groups:
        out.append(f"<p>{escape(labels['none'])}</p>")
    for group in groups:
        finding = group.first
        count = f" ×{group.count}" if group.count > 1 else ""
        out.append(
            f'<div class="finding {finding.severity}" data-severity="{finding.severity}" '
            f'data-rule="{escape(finding.rule)}"><span class="sev">{finding.severity}</span> '
            f"<b>{escape(finding.rule)}</b>{count} <small>[{escape(finding.layer)}]</small>"
        )
        for message, places in group.by_message():
            out.append(f"<p>{escape(message)}</p>")
            if places:
                out.append('<ul class="loc">' + "".join(
                    f"<li>{escape(labels['at'])} <code>{escape(place)}</code></li>"
                    for place in places
                ) + "</ul>")
        terms = group.terms()
        if terms:
            path = term_path(short_xpath(finding.location.xpath or ""), finding.business_terms)
            shown = ", ".join(terms) + (f" ({path})" if path else "")
            out.append(f'<p class="terms">{escape(labels["terms"])}: {escape(shown)}</p>')
        advice = hint(finding.rule, lang) if finding.severity != "information" else None
        if advice:
            out.append(f'<p class="hint">{escape(labels["hint"])}: {escape(advice)}</p>')
        out.append("</div>")
    out.append("</section>")
    return out
