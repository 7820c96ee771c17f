"""The values of a finding's business terms, read from the invoice through the EN 16931 model,
so that `BR-CO-10` shows `BT-106 = 1200.00; sum of BT-131 = 1250.00 (3 values)` beside the
rule's message instead of leaving the reader to open the XML.

Values are shown as written in the invoice (exact decimals, no rounding, no locale grouping).
An input the model cannot read (or that is gone, like standard input) simply shows no values.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from ..validate.report import Report

# Repeated terms that the rules add up (Σ in their messages): shown as their sum.
SUMMED = frozenset({"BT-92", "BT-99", "BT-116", "BT-117", "BT-131", "BT-136", "BT-141"})
MAX_LISTED = 5


def _occurrences(data: Any, term: str) -> Iterator[Any]:
    """Every value of `term` anywhere in a model dict (`Invoice.to_dict()`)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == term:
                yield value
            elif isinstance(value, dict | list):
                yield from _occurrences(value, term)
    elif isinstance(data, list):
        for item in data:
            yield from _occurrences(item, term)


def _text(value: Any) -> str:
    if isinstance(value, dict) and "value" in value:  # an identifier with its scheme
        scheme = value.get("scheme")
        return f"{value['value']}" + (f" (scheme {scheme})" if scheme else "")
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value[:MAX_LISTED]) or "(none)"
    if isinstance(value, dict):
        return "…"
    return " ".join(str(value).split())


def describe_term(data: dict[str, Any], term: str) -> str:
    """`BT-106 = 95.00`, `sum of BT-131 = 100.00 (3 values)`, `BT-107 absent`, ..."""
    values = list(_occurrences(data, term))
    if not values:
        return f"{term} absent"
    if len(values) == 1:
        return f"{term} = {_text(values[0])}"
    if term in SUMMED:
        try:
            total = sum((Decimal(str(v)) for v in values), Decimal(0))
        except (InvalidOperation, TypeError):
            pass
        else:
            return f"sum of {term} = {total} ({len(values)} values)"
    shown = ", ".join(_text(v) for v in values[:MAX_LISTED])
    more = f", … ({len(values)} values)" if len(values) > MAX_LISTED else ""
    return f"{term} = {shown}{more}"


class InvoiceValues:
    """Reads each report's invoice once (only when one of its findings names terms)."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any] | None] = {}

    def model(self, report: Report) -> dict[str, Any] | None:
        if report.error is not None or report.container is None:
            return None
        if report.path not in self._data:
            self._data[report.path] = _read(report.path)
        return self._data[report.path]

    def terms(self, report: Report, terms: list[str]) -> list[str]:
        """The values of the business terms (BT-n) among `terms`; empty when unreadable."""
        wanted = [t for t in terms if t.startswith("BT-")]
        if not wanted:
            return []
        data = self.model(report)
        if data is None:
            return []
        return [describe_term(data, term) for term in wanted]


def _read(path: str) -> dict[str, Any] | None:
    from ..read import read

    try:
        data: dict[str, Any] = read(path, check_codes=False).to_dict()
    except Exception:
        return None
    return data
