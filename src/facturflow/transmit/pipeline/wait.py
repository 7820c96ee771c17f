"""Waiting: the invoices sent polled until their lifecycle reaches a final outcome."""

from __future__ import annotations

import time

from ..errors import (
    AuthenticationError,
    PermissionDeniedError,
    QontoError,
)
from ..outbox import Item
from ..qonto import (
    QontoClient,
)
from ..store import (
    OutboxStore,
)
from .options import Progress, SendOptions


def refresh_status(client: QontoClient, outbox: OutboxStore, item: Item) -> Item:
    """Fetch an invoice's e-invoicing status and lifecycle events into the outbox."""
    assert item.invoice_id is not None
    invoice = client.get_client_invoice(item.invoice_id)
    events = [e.as_dict() for e in invoice.lifecycle_events]
    if invoice.einvoicing_status != item.einvoicing_status or tuple(events) != item.events:
        outbox.record_status(item.upload_sha256, invoice.einvoicing_status, events)
    refreshed = outbox.get(item.upload_sha256)
    assert refreshed is not None
    return refreshed


def _wait(client: QontoClient, outbox: OutboxStore, wanted: set[str], options: SendOptions,
          progress: Progress | None) -> None:
    """Poll each sent invoice until it reaches a final outcome (facturflow.lifecycle: approved,
    refused, rejected, paid, not delivered, submission failed) or the timeout, asking about
    one invoice no earlier than `poll_interval` after it was sent or last asked about: a status
    cannot be fresher than the lifecycle behind it, and Qonto's quota is shared. A 202 (the
    recipient's platform has it) is not final: a refusal may follow."""
    deadline = time.monotonic() + options.wait_timeout
    interval = max(0.0, options.poll_interval)
    asked: dict[str, float] = {}  # upload sha -> when it was last polled (wall clock)
    while True:
        sent = [i for i in outbox.items() if i.upload_sha256 in wanted and i.state == "sent"]
        still = [i for i in sent if not i.final]
        if progress:
            progress("wait", len(sent) - len(still), len(sent))
        left = deadline - time.monotonic()
        if not still or (left <= 0 and all(i.upload_sha256 in asked for i in still)):
            return  # (each one asked about once at least, even with no time left)
        now = time.time()
        due_at = {i.upload_sha256: asked.get(i.upload_sha256, i.sent_at or now) + interval
                  for i in still}
        pause = min(min(due_at.values()) - now, left)
        if pause > 0:
            time.sleep(pause)
            now = time.time()
        for item in still:
            if due_at[item.upload_sha256] > now and time.monotonic() < deadline:
                continue
            asked[item.upload_sha256] = time.time()
            try:
                refresh_status(client, outbox, item)
            except (AuthenticationError, PermissionDeniedError):
                raise  # polling again cannot help: a configuration error
            except QontoError:
                continue  # polling again later is the remedy
        outbox.sync()
