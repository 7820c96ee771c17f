"""The send stage: detect -> validate -> Factur-X for XML input -> pre-flight -> import in batches
-> send -> optionally wait for the lifecycle, with every step journaled in the outbox.

An invoice with a fatal finding is never uploaded. A run killed anywhere can be repeated: the
outbox says what is done, and Qonto's content-idempotent import and send make the steps that
were in flight safe to repeat (see facturflow.transmit.outbox).

Imports and sends start while later files are still being validated: one request at a time,
in a worker thread, each preceded by a durable commit of the outbox (see _Flow). The network
wait and the fsyncs of those commits thus overlap validation instead of adding to it; the
periodic commit of validation results (every SYNC_EVERY files or SYNC_SECONDS) runs on the
validating thread.

The package, by step: `run` (`send_invoices`), `sources` (validation and conversion of a
source), `admit` (pre-flight and admission to the outbox), `lookup` (the same invoice at
Qonto: dedup), `upload` (imports and sends), `wait` (the lifecycle awaited), `options` (options
and results).
"""

from __future__ import annotations

from .admit import _organization as _organization
from .lookup import content_of as content_of
from .options import DEFAULT_LOOKBACK_DAYS as DEFAULT_LOOKBACK_DAYS
from .options import MAX_LOOKBACK_DAYS as MAX_LOOKBACK_DAYS
from .options import Outcome, SendOptions, SendSummary
from .run import send_invoices
from .sources import Prepared, Rejected, prepare
from .wait import refresh_status

__all__ = ["Outcome", "Prepared", "Rejected", "SendOptions", "SendSummary", "prepare",
           "refresh_status", "send_invoices"]
