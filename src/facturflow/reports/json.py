"""The stable JSON report (shape documented in the README):

    {"files": [Report.as_dict(), ...],
     "summary": {"files": N, "valid": N, "invalid": N, "unreadable": N,
                 "findings": {"fatal": N, "warning": N, "information": N}},
     "facturflow": {"version": "..."}}

Each file's `rule_sets` gives every rule set applied, with its version and artefact sha256.
Each finding gains `term_path` (its location as a business-term path, `BG-25[3] / BT-131`, or
null) and `values` (what the invoice says for the BT terms of a fatal or warning finding:
`[{"term", "values", "count"[, "sum"]}]`, see facturflow.reports.values).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .. import __version__
from ..validation.report import SEVERITIES, Report
from .termpath import finding_term_path
from .values import InvoiceValues


def summary(reports: list[Report]) -> dict[str, Any]:
    """Counts of files by verdict and of findings by severity (an unreadable file's findings,
    which restate its error, are counted with the others: the JSON lists them)."""
    unreadable = sum(1 for r in reports if r.error is not None)
    valid = sum(1 for r in reports if r.ok)
    return {
        "files": len(reports),
        "valid": valid,
        "invalid": len(reports) - valid - unreadable,
        "unreadable": unreadable,
        "findings": {s: sum(len(r.by_severity(s)) for r in reports) for s in SEVERITIES},
    }


def file_document(report: Report, reader: InvoiceValues | None = None) -> dict[str, Any]:
    """One file's entry: `Report.as_dict()` with each finding's `term_path` and `values`."""
    reader = reader or InvoiceValues()
    data = report.as_dict()
    for finding, entry in zip(report.findings, data["findings"], strict=True):
        entry["term_path"] = finding_term_path(finding.location.xpath, finding.business_terms)
        entry["values"] = [value.as_dict() for value in reader.finding(report, finding)]
    return data


def as_document(reports: Iterable[Report]) -> dict[str, Any]:
    """The JSON document as Python data."""
    batch = list(reports)
    reader = InvoiceValues()
    return {
        "files": [file_document(report, reader) for report in batch],
        "summary": summary(batch),
        "facturflow": {"version": __version__},
    }


def render(reports: Iterable[Report]) -> str:
    """The JSON document as text (UTF-8 characters kept, two-space indent)."""
    return json.dumps(as_document(reports), indent=2, ensure_ascii=False)
