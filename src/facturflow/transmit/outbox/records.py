"""What the outbox records: the states of an upload, an `Item`, a `SourceRecord`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from ...lifecycle import Verdict, classify

State = Literal["validated", "importing", "imported", "sending", "sent", "failed"]
STATES: tuple[State, ...] = ("validated", "importing", "imported", "sending", "sent", "failed")
# Qonto einvoicing_status values final on their own. `approved` is not among them: a later
# event (207 En litige...) may reopen it; see facturflow.lifecycle for what is final.
FINAL_EINVOICING = frozenset({"declined", "not_delivered", "submission_failed"})


@dataclass(frozen=True)
class Item:
    """One invoice in the outbox."""

    org: str
    upload_sha256: str
    source_sha256: str
    source_path: str
    file_name: str
    upload_format: str
    size: int
    invoice_number: str | None
    buyer_siren: str | None
    state: State
    invoice_id: str | None
    einvoicing_status: str | None
    events: tuple[dict[str, Any], ...]
    error: str | None
    created_at: float
    updated_at: float
    sent_at: float | None
    # What the invoice says that Qonto also records (issue date, currency, totals; see
    # facturflow.transmit.pipeline.content_of), as JSON: how "same number, other content" is told.
    content: str | None = None

    @property
    def content_fields(self) -> dict[str, str]:
        if not self.content:
            return {}
        value = json.loads(self.content)
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    @property
    def latest_event(self) -> dict[str, Any] | None:
        if not self.events:
            return None
        return sorted(self.events, key=lambda e: (str(e.get("timestamp") or ""),
                                                  int(e.get("status_code") or 0)))[-1]

    @property
    def verdict(self) -> Verdict:
        """The lifecycle outcome so far (facturflow.lifecycle.classify)."""
        return classify(self.events, self.einvoicing_status)

    @property
    def final(self) -> bool:
        """True when the invoice reached a final outcome: approved, refused, rejected by the
        platform, paid, not delivered, submission failed (a 202 is not one: the recipient
        has not acted yet)."""
        return self.state == "sent" and self.verdict.final

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_path": self.source_path,
            "file_name": self.file_name,
            "upload_format": self.upload_format,
            "upload_sha256": self.upload_sha256,
            "invoice_number": self.invoice_number,
            "state": self.state,
            "invoice_id": self.invoice_id,
            "einvoicing_status": self.einvoicing_status,
            "lifecycle_events": list(self.events),
            "outcome": self.verdict.outcome if self.state == "sent" else None,
            "outcome_text": self.verdict.describe() if self.state == "sent" else None,
            "error": self.error,
            "sent_at": self.sent_at,
        }


@dataclass(frozen=True)
class SourceRecord:
    """What one source file became for an organisation: an upload, or a rejection."""

    verdict: Literal["ok", "rejected"]
    upload_sha256: str | None
    reason: str | None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
