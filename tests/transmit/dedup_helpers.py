"""Helpers of the tests of issue 11 (never twice, never lost): test_dedup and test_dedup_attacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from facturflow.transmit.qonto import QontoClient

from .transmit_helpers import cii_variant
from .transmit_helpers import run_raising as run

# The issue date (BT-2) of cii_variant.
ISSUED = b'<udt:DateTimeString format="102">20260302<'


def other_bytes(number: str) -> bytes:
    """cii_variant(number) in other bytes, the same invoice (as another conversion would give):
    Qonto's content-idempotent import cannot recognise it, the number check does."""
    return cii_variant(number).replace(b"<rsm:", b"\n<rsm:", 1)


def other_content(number: str) -> bytes:
    """A valid invoice numbered `number` whose issue date is not the one of cii_variant."""
    data = cii_variant(number)
    changed = data.replace(ISSUED, b'<udt:DateTimeString format="102">20260303<', 1)
    assert changed != data
    return changed


def send_json(source: Path, state: Path, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    """`facturflow send SOURCE --upload xml --state STATE --format json EXTRA`: the exit code
    and the outcome of each invoice."""
    result = run("send", str(source), "--upload", "xml", "--state", str(state),
                 "--format", "json", *extra)
    return result.exit_code, json.loads(result.stdout)["invoices"]


def spy_listings(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The parameters of every listing of Qonto's client invoices from now on, in order."""
    seen: list[dict[str, Any]] = []
    real = QontoClient.iter_client_invoices

    def spy(self: QontoClient, **params: Any) -> Any:
        seen.append(params)
        return real(self, **params)

    monkeypatch.setattr(QontoClient, "iter_client_invoices", spy)
    return seen
