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
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..validation.report import Finding, Report

if TYPE_CHECKING:
    from ..model.invoice import Invoice

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


# A value is shown up to this many characters (a hostile invoice may carry megabytes in one).
MAX_CHARS = 200


def _text(value: Any) -> str:
    text = _whole_text(value)
    if len(text) > MAX_CHARS:
        return f"{text[:MAX_CHARS]}…[+{len(text) - MAX_CHARS}]"
    return text


def _whole_text(value: Any) -> str:
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


# -- the invoices, read once per run --------------------------------------------------------
#
# Every report of a run (text, JSON, SARIF, JUnit, HTML) reads an invoice through `read_model`,
# which keeps it here: the first report that needs a file reads it, the others find it. One
# entry per file, keyed by its path, size and mtime so that a changed file is read again. An
# entry keeps the values of every term its report's findings name (small) for the last CACHED
# files, and the Invoice itself (a few kB, more with attached documents: what the HTML report's
# key data is made of) for the last INVOICES_KEPT. The HTML report's worker processes send back
# each file's values rather than its Invoice, which costs more to pickle than to read again.
CACHED = 10_000
INVOICES_KEPT = 2_000
_cache: OrderedDict[tuple[str, int, int], Read] = OrderedDict()
_invoices: OrderedDict[tuple[str, int, int], None] = OrderedDict()  # entries with an Invoice
_lock = threading.Lock()


@dataclass
class Read:
    """One invoice as the reports see it: the Invoice (None when it cannot be read: `error`
    says why), its model dict (made once, for the values) and the values worked out so far."""

    invoice: Invoice | None = None
    error: str | None = None
    values: dict[str, TermValue] = field(default_factory=dict)
    _data: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def data(self) -> dict[str, Any] | None:
        """The model dict (`Invoice.to_dict()`), or None when there is no Invoice."""
        if self._data is None and self.invoice is not None:
            self._data = self.invoice.to_dict()
        return self._data

    def term_values(self, terms: Iterable[str]) -> dict[str, TermValue]:
        """The values of `terms` (BT-n), from the table when known, else from the model."""
        missing = [t for t in terms if t not in self.values]
        data = self.data if missing else None
        if data is not None:
            for term in missing:
                self.values[term] = term_value(data, term)
        return self.values


def _signature(path: str) -> tuple[str, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), status.st_mtime_ns, status.st_size)


def readable(report: Report) -> bool:
    """Whether a report's input can be read again for its key data: a file that was read (not
    an unreadable input or a CDAR lifecycle message)."""
    return report.error is None and report.container is not None and report.syntax != "cdar"


def read_model(report: Report, *, invoice: bool = False) -> Read | None:
    """The invoice of a report, read once per run (see CACHED); None when there is nothing to
    read (an unreadable input, a lifecycle message, a file gone since). With `invoice`, an
    entry that holds only values (from a worker process) is read again for its Invoice."""
    if not readable(report):
        return None
    key = _signature(report.path)
    if key is None:
        return None
    with _lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
            if not invoice or entry.invoice is not None or entry.error is not None:
                return entry
    entry = _read(report)
    # The values every report of the run shows, worked out while the Invoice is at hand.
    entry.term_values(report_terms(report))
    remember(report, entry, key)
    return entry


def remember(report: Report, entry: Read, key: tuple[str, int, int] | None = None) -> None:
    """Keep what was read of a report's invoice (elsewhere: a worker process) for this run."""
    key = key or _signature(report.path)
    if key is None:
        return
    with _lock:
        known = _cache.get(key)
        if known is not None and known.invoice is not None and entry.invoice is None:
            known.values.update(entry.values)  # keep the Invoice, add the values
            return
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > CACHED:
            _invoices.pop(_cache.popitem(last=False)[0], None)
        if entry.invoice is not None:
            _invoices[key] = None
            _invoices.move_to_end(key)
            while len(_invoices) > INVOICES_KEPT:  # the older ones keep their values only
                older = _cache.get(_invoices.popitem(last=False)[0])
                if older is not None:
                    older.invoice, older._data = None, None


def clear() -> None:
    """Forget every invoice read (benchmarks measure a run from the start)."""
    with _lock:
        _cache.clear()
        _invoices.clear()


def _read(report: Report) -> Read:
    """Read a report's invoice through the EN 16931 model. A PDF whose validation named its
    invoice XML is read from that attachment alone (detect_embedded: the PDF's structure was
    checked by the validation already, and is not checked again for a report)."""
    from ..detection import detect_bytes, detect_embedded, read_source
    from ..reading import read

    try:
        data, name = read_source(report.path)
        if report.container == "pdf" and report.attachment and data.lstrip()[:5] == b"%PDF-":
            document = detect_embedded(data, name=name, attachment=report.attachment)
        else:
            document = detect_bytes(data, name=name)
        return Read(invoice=read(document, check_codes=False))
    except Exception as exc:  # hostile input: whatever the reader says, the report goes on
        return Read(error=str(exc) or type(exc).__name__)


def _bt_terms(terms: Iterable[str]) -> list[str]:
    return [t for t in dict.fromkeys(terms) if t.startswith("BT-")]


def report_terms(report: Report) -> list[str]:
    """The business terms (BT-n) a report's findings name: the values its reports show."""
    return _bt_terms(t for f in report.findings for t in f.business_terms)


class InvoiceValues:
    """The values of a report's business terms: its invoice is read once per run (only when one
    of its findings names BT terms, see read_model), for every term its findings name."""

    def values(self, report: Report, terms: tuple[str, ...] | list[str]) -> list[TermValue]:
        """The values of the business terms (BT-n) among `terms`; empty when unreadable."""
        wanted = _bt_terms(terms)
        if not wanted:
            return []
        entry = read_model(report)
        if entry is None:
            return []
        table = entry.term_values(wanted)
        if any(term not in table for term in wanted) and entry.error is None:
            entry = read_model(report, invoice=True)  # values only, not these: read it
            table = entry.term_values(wanted) if entry is not None else {}
        return [table[term] for term in wanted if term in table]

    def finding(self, report: Report, finding: Finding) -> list[TermValue]:
        """The values shown for one finding (none for information findings)."""
        return self.values(report, finding.business_terms) if shows_values(finding) else []

    def terms(self, report: Report, terms: list[str]) -> list[str]:
        """The values of the business terms among `terms`, as text (`BT-106 = 1200.00`)."""
        return [value.text() for value in self.values(report, terms)]
