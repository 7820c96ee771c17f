"""The stable JSON report: `{"files": [Report.as_dict(), ...]}` (shape documented in the README)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..validate.report import Report


def as_document(reports: Iterable[Report]) -> dict[str, Any]:
    """The JSON document as Python data."""
    return {"files": [report.as_dict() for report in reports]}


def render(reports: Iterable[Report]) -> str:
    """The JSON document as text (UTF-8 characters kept, two-space indent)."""
    return json.dumps(as_document(reports), indent=2, ensure_ascii=False)
