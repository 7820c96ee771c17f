"""Small invoices for model tests: the mandatory header terms, and whatever a test adds."""

from __future__ import annotations

from datetime import date

from facturflow.model import Invoice


def minimal_invoice(**changes: object) -> Invoice:
    """An invoice with BT-1, BT-2, BT-3 and BT-5 set, and `changes` on top."""
    base: dict[str, object] = {
        "number": "F-1",
        "issue_date": date(2026, 1, 5),
        "type_code": "380",
        "currency_code": "EUR",
    }
    base.update(changes)
    return Invoice(**base)  # type: ignore[arg-type]
