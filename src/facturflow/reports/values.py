"""The values of a finding's business terms, read from the invoice through the EN 16931 model,
so that `BR-CO-10` shows `BT-106 = 1200.00; sum of BT-131 = 1250.00 (3 values)` beside the
rule's message instead of leaving the reader to open the XML.

One reading, several formats: `term_value` gives a `TermValue` (the term, the values as
written, their count and, for a repeated term the rules add up, their sum); the text, SARIF and
JUnit reports print its `text()`, the JSON report gives its `as_dict()`. Values are kept as
written in the invoice (exact decimals, no rounding, no locale grouping). An input the model
cannot read (or that is gone, like standard input) simply shows no values.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..validate.report import Finding, Report

# Repeated terms that the rules add up (Σ in their messages): shown as their sum.
SUMMED = frozenset({"BT-92", "BT-99", "BT-116", "BT-117", "BT-131", "BT-136", "BT-141"})
MAX_LISTED = 5  # values written out in a line of text
MAX_VALUES = 50  # values kept in the structured form (JSON): `count` says how many there are


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


@dataclass(frozen=True)
class TermValue:
    """What the invoice says for one business term: `values` as written (at most MAX_VALUES
    of them), `count` of all, and `sum` (exact) when the term is one the rules add up and it
    occurs more than once."""

    term: str
    values: tuple[str, ...]
    count: int
    sum: str | None = None

    @property
    def absent(self) -> bool:
        return self.count == 0

    def text(self) -> str:
        """`BT-106 = 95.00`, `sum of BT-131 = 100.00 (3 values)`, `BT-107 absent`, ..."""
        if self.absent:
            return f"{self.term} absent"
        if self.sum is not None:
            return f"sum of {self.term} = {self.sum} ({self.count} values)"
        if self.count == 1:
            return f"{self.term} = {self.values[0]}"
        shown = ", ".join(self.values[:MAX_LISTED])
        more = f", … ({self.count} values)" if self.count > MAX_LISTED else ""
        return f"{self.term} = {shown}{more}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape: {"term", "values", "count"} and, for a summed term, "sum"."""
        data: dict[str, Any] = {"term": self.term, "values": list(self.values), "count": self.count}
        if self.sum is not None:
            data["sum"] = self.sum
        return data


def term_value(data: dict[str, Any], term: str) -> TermValue:
    """The values of `term` in a model dict (`Invoice.to_dict()`)."""
    found = list(_occurrences(data, term))
    texts = tuple(_text(v) for v in found[:MAX_VALUES])
    total: str | None = None
    if len(found) > 1 and term in SUMMED:
        try:
            total = str(sum((Decimal(str(v)) for v in found), Decimal(0)))
        except (InvalidOperation, TypeError):
            total = None
    return TermValue(term, texts, len(found), total)


def describe_term(data: dict[str, Any], term: str) -> str:
    """`BT-106 = 95.00`, `sum of BT-131 = 100.00 (3 values)`, `BT-107 absent`, ..."""
    return term_value(data, term).text()


def shows_values(finding: Finding) -> bool:
    """Whether a finding's values are read: a fatal or warning finding naming a BT term (the
    information notes say which rule sets ran, not what the invoice says)."""
    return finding.severity != "information" and any(
        term.startswith("BT-") for term in finding.business_terms
    )


# Each file's values, kept between the reports of one run (text, JSON, SARIF and JUnit would
# each read the invoice again: ~25 ms apiece) and keyed by the file's size and mtime so that a
# changed file is read again. Small: a few TermValues per file, for the last CACHED files.
CACHED = 10_000
_cache: OrderedDict[tuple[str, int, int], dict[str, TermValue]] = OrderedDict()
_lock = threading.Lock()


def _signature(path: str) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


def _bt_terms(terms: Iterable[str]) -> list[str]:
    return [t for t in dict.fromkeys(terms) if t.startswith("BT-")]


class InvoiceValues:
    """The values of a report's business terms: its invoice is read once (only when one of its
    findings names BT terms), for every term its findings name, and kept for the next report
    of the same run (see CACHED)."""

    def __init__(self) -> None:
        self._unreadable: set[str] = set()

    def _table(self, report: Report, wanted: list[str]) -> dict[str, TermValue]:
        if report.error is not None or report.container is None:
            return {}
        key = _signature(report.path)
        if key is None:
            return {}
        with _lock:
            table = _cache.get(key)
            if table is not None:
                _cache.move_to_end(key)
        if table is not None and all(term in table for term in wanted):
            return table
        if report.path in self._unreadable:
            return {}
        data = _read(report.path)
        if data is None:
            self._unreadable.add(report.path)
            return {}
        terms = _bt_terms([*wanted, *(t for f in report.findings for t in f.business_terms)])
        table = {term: term_value(data, term) for term in terms}
        with _lock:
            _cache[key] = table
            while len(_cache) > CACHED:
                _cache.popitem(last=False)
        return table

    def values(self, report: Report, terms: tuple[str, ...] | list[str]) -> list[TermValue]:
        """The values of the business terms (BT-n) among `terms`; empty when unreadable."""
        wanted = _bt_terms(terms)
        if not wanted:
            return []
        table = self._table(report, wanted)
        return [table[term] for term in wanted if term in table]

    def finding(self, report: Report, finding: Finding) -> list[TermValue]:
        """The values shown for one finding (none for information findings)."""
        return self.values(report, finding.business_terms) if shows_values(finding) else []

    def terms(self, report: Report, terms: list[str]) -> list[str]:
        """The values of the business terms among `terms`, as text (`BT-106 = 1200.00`)."""
        return [value.text() for value in self.values(report, terms)]


def _read(path: str) -> dict[str, Any] | None:
    from ..read import read

    try:
        data: dict[str, Any] = read(path, check_codes=False).to_dict()
    except Exception:
        return None
    return data
