"""The stable JSON report (shape documented in the README):

    {"files": [Report.as_dict(), ...],
     "summary": {"files": N, "valid": N, "invalid": N, "unreadable": N,
                 "findings": {"fatal": N, "warning": N, "information": N}},
     "facturflow": {"version": "..."}}

Each file's `rule_sets` gives every rule set applied, with its version and artefact sha256.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .. import __version__
from ..validate.report import SEVERITIES, Report


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


def as_document(reports: Iterable[Report]) -> dict[str, Any]:
    """The JSON document as Python data."""
    batch = list(reports)
    return {
        "files": [report.as_dict() for report in batch],
        "summary": summary(batch),
        "facturflow": {"version": __version__},
    }


def render(reports: Iterable[Report]) -> str:
    """The JSON document as text (UTF-8 characters kept, two-space indent)."""
    return json.dumps(as_document(reports), indent=2, ensure_ascii=False)
