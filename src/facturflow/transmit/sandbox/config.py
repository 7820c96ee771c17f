"""`SandboxConfig`: every option a test may choose, and the lifecycle schedules it defaults to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .faults import FaultPlan

MIB = 1024 * 1024

# Lifecycle code -> einvoicing_status (API.md §6.2 suggested mapping; configurable).
DEFAULT_STATUS_MAP: dict[int, str] = {
    200: "submitted", 201: "submitted", 202: "submitted", 203: "submitted", 204: "submitted",
    205: "approved", 206: "approved", 209: "approved", 211: "approved", 212: "approved",
    207: "submitted", 208: "submitted", 210: "declined", 213: "submission_failed",
}

# Outcome -> lifecycle codes played after a send, with their delay in seconds. A decision
# comes a moment after 202, as it does for real: a client that stops at 202 misses it.
# "delivered" and "disputed" never reach a final outcome (facturflow.lifecycle).
OUTCOMES: dict[str, tuple[tuple[int, float], ...]] = {
    "delivered": ((200, 0.0), (201, 1.0), (202, 2.0)),
    "approved": ((200, 0.0), (201, 0.5), (202, 1.0), (205, 2.0)),
    "refused": ((200, 0.0), (201, 1.0), (202, 2.0), (210, 3.0)),
    "paid": ((200, 0.0), (201, 0.5), (202, 1.0), (212, 2.0)),  # paid without a 205 first
    "disputed": ((200, 0.0), (201, 0.5), (202, 1.0), (207, 2.0)),
    "rejected": ((200, 0.0), (213, 1.0)),
    "failed": ((200, 0.0), (213, 1.0)),  # the older name of "rejected"
    "not_delivered": ((200, 0.0), (201, 0.5)),
}
# Outcomes that end in an einvoicing_status no code gives: (status, delay after the send).
OUTCOME_STATUS: dict[str, tuple[str, float]] = {"not_delivered": ("not_delivered", 2.0)}

ALL_SCOPES = (
    "organization.read", "einvoicing.read", "client_invoice.write", "client_invoices.write",
    "client_invoices.read", "client.read", "client.write", "supplier_invoice.read",
    "supplier_invoice.write", "attachment.read", "offline_access",
)


@dataclass
class SandboxConfig:
    """Everything the sandbox lets a test choose; defaults follow API.md's [EMU] suggestions."""

    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None  # login:secret; generated when None
    organization_slug: str = "sandbox-org"
    staging_token: str | None = None  # when set, requests without it get a 302 (real sandbox)
    oauth_client_id: str = "sandbox-client"
    oauth_client_secret: str | None = None
    partner_id: str = "sandbox-partner"
    partner_token: str | None = None
    rate_limits: tuple[tuple[int, float], ...] = ((1000, 10.0), (10000, 600.0))
    unauthorized_limit: int = 200  # 401s per hour before throttling
    accept_xml: bool = True  # API.md §10 Q1
    sending_status: str = "enabled"
    receiving_status: str = "enabled"
    # The outcome of every send (set_outcome() overrides it per invoice number); the private
    # sandbox of the CLI takes it from $FACTURFLOW_SANDBOX_OUTCOME (default "approved").
    outcome: str = "delivered"
    lifecycle: Mapping[str, tuple[tuple[int, float], ...]] = field(
        default_factory=lambda: dict(OUTCOMES)
    )
    status_map: Mapping[int, str] = field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))
    unreachable_sirens: frozenset[str] = frozenset()
    list_includes_events: bool = False  # API.md §10 Q6
    supplier_per_page: int = 25  # API.md §10 Q16
    idempotency_ttl: float = 1800.0
    access_token_ttl: int = 3600
    max_file_bytes: int = 5 * MIB
    max_request_bytes: int = 15 * MIB
    # A request whose headers or body stall this long is dropped (a short or bogus
    # Content-Length cannot hold a handler thread); idle keep-alive connections close too.
    read_timeout: float = 30.0
    faults: FaultPlan = field(default_factory=FaultPlan)
    not_reachable_code: str = "recipient_not_reachable_on_einvoicing"
    not_activated_code: str = "einvoicing_not_activated"
    # A registration's statuses and when (seconds after its creation, on the sandbox clock,
    # which tests move with advance()) it reaches each: the Onboarding webhooks' names.
    registration_steps: tuple[tuple[str, float], ...] = (
        ("pending", 0.0), ("user_started", 60.0), ("contract_signed", 600.0),
        ("completed", 3600.0))
    # From this moment (UTC) rejecting a French e-invoice needs declined_reason_code (§5.9).
    reason_code_required_from: str = "2026-09-01T00:00:00Z"
    # Webhooks (API.md §5.13, §10 Q14): when a URL and a secret are set, every lifecycle change
    # of a sent invoice is POSTed there as a signed v1/client-invoices "updated" event (see
    # _WebhookEmitter), retried with a doubling backoff up to webhook_max_attempts times.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_signed_payload: str = "{t}.{body}"
    webhook_max_attempts: int = 10  # about 80 s of retries with the default backoff
    webhook_backoff: float = 0.2  # seconds before the first retry, doubled each time (cap 30)
    webhook_timeout: float = 5.0
