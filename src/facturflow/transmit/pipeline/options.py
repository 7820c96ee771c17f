"""What a send run is told (`SendOptions`) and what it answers (`Outcome`, `SendSummary`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ... import exitcodes
from ...xmlsafe import DEFAULT_LIMITS, Limits
from ..outbox_pg import DEFAULT_LEASE_SECONDS
from ..qonto import (
    MAX_IMPORT_FILES,
)

# While validating, the outbox commits at least every SYNC_EVERY admissions or SYNC_SECONDS
# (besides before each request): a crash then costs little work, and the write transaction is
# never held long (a reader such as `facturflow status` waits for it only if it must write).
SYNC_EVERY = 50
SYNC_SECONDS = 1.0

# How far back (by creation date at Qonto) the send stage lists the organisation's client
# invoices to find an invoice number already there before importing one it has no record of.
# 400 days: a fiscal year and a month, so a year's invoices re-sent after the closing are still
# found; the window is also widened, per run, back to the issue date of the oldest invoice that
# must be checked (an invoice cannot have been imported before it was issued), so an older file
# is checked too, at the cost of a longer listing. See _QontoNumbers.
DEFAULT_LOOKBACK_DAYS = 400
MAX_LOOKBACK_DAYS = 36600

UploadFormat = Literal["facturx", "xml"]
OutcomeKind = Literal["sent", "already_sent", "rejected", "failed", "would_send"]
Progress = Callable[[str, int, int], None]  # (stage, done, total)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SendOptions:
    """How `send_invoices` behaves; the CLI maps its flags onto this."""

    upload: UploadFormat = "facturx"
    wait: bool = False
    dry_run: bool = False
    wait_timeout: float = 600.0
    poll_interval: float = 5.0
    rules: str | None = None
    batch_size: int = MAX_IMPORT_FILES
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    # With a PostgreSQL outbox: how long a sender's claim on an invoice outlives the sender
    # (renewed while it runs); after that another sender takes the invoice over.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    # The input limits each source is read, detected, validated and converted under (raise
    # them for a very large genuine invoice: --max-size, --max-nodes).
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        if isinstance(self.lookback_days, bool) or not isinstance(self.lookback_days, int) or \
                not 1 <= self.lookback_days <= MAX_LOOKBACK_DAYS:
            raise ValueError(f"lookback_days must be a whole number of days from 1 to "
                             f"{MAX_LOOKBACK_DAYS}, not {self.lookback_days!r}")
        if isinstance(self.lease_seconds, bool) or not isinstance(
                self.lease_seconds, int | float) or not 0 < self.lease_seconds <= 86_400:
            raise ValueError(f"lease_seconds must be a number of seconds from 0 (excluded) to "
                             f"86400, not {self.lease_seconds!r}")
        if self.rules is not None:
            # Fail closed before anything is read or sent: an empty or unknown selection would
            # otherwise reach validation file by file (UnknownRuleSetError, also a ValueError).
            from ...rules import parse_rule_sets

            parse_rule_sets(self.rules)


@dataclass(frozen=True)
class Outcome:
    """What became of one input."""

    path: str
    kind: OutcomeKind
    reason: str | None = None
    invoice_id: str | None = None
    invoice_number: str | None = None
    einvoicing_status: str | None = None
    findings: tuple[str, ...] = ()
    # With --wait, for a sent invoice: its lifecycle outcome (facturflow.lifecycle: approved,
    # refused, rejected, paid, not_delivered, submission_failed, or pending when the wait
    # gave up) and its description, e.g. "refused (210 Refusée): REFUS ...".
    final: str | None = None
    final_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "outcome": self.kind, "reason": self.reason,
            "invoice_id": self.invoice_id, "invoice_number": self.invoice_number,
            "einvoicing_status": self.einvoicing_status, "findings": list(self.findings),
            "final": self.final, "final_text": self.final_text,
        }


@dataclass
class SendSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    organization: str | None = None

    def count(self, kind: OutcomeKind) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)

    @property
    def ok(self) -> bool:
        """True only when every input was sent (now or before), or would be (dry run); with
        --wait, a refused, rejected, undelivered or failed invoice is not ok."""
        return bool(self.outcomes) and all(
            o.kind in ("sent", "already_sent", "would_send") for o in self.outcomes
        )

    @property
    def pending(self) -> list[Outcome]:
        """Sent invoices that had not reached a final outcome when --wait gave up."""
        return [o for o in self.outcomes if o.final == "pending"]

    @property
    def exit_code(self) -> int:
        """1 when an input failed, was rejected, refused...; else 5 when --wait gave up on
        some; else 0 (facturflow.exitcodes). A failure wins: it is known for sure."""
        if not self.ok:
            return exitcodes.INVALID
        return exitcodes.PENDING if self.pending else exitcodes.OK

    def as_dict(self) -> dict[str, Any]:
        kinds: tuple[OutcomeKind, ...] = ("sent", "already_sent", "rejected", "failed",
                                          "would_send")
        return {"organization": self.organization, "ok": self.ok,
                "exit_code": self.exit_code,
                "counts": {k: self.count(k) for k in kinds},
                "pending": [o.path for o in self.pending],
                "invoices": [o.as_dict() for o in self.outcomes]}
