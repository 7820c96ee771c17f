"""The durable outbox: one SQLite row per invoice to send, keyed by (organisation, sha256 of the
bytes uploaded), so that a run killed at any point can be re-run without sending twice. (This is
the default backend, one writer per state folder; facturflow.transmit.outbox_pg keeps the same
schema and guarantees in PostgreSQL for several senders; facturflow.transmit.store is the
interface both implement.)

Each transition is committed durably before the network step that follows it:

    validated ─▶ importing ─▶ imported ─▶ sending ─▶ sent ─▶ (lifecycle events recorded)
         └──────────┴────────────┴───────────┴──▶ failed (reason; retried by the next run)

`importing` and `sending` mark a request that may or may not have reached Qonto. Both steps are
idempotent on Qonto's side (a re-imported file returns its existing id; a repeated
send_by_einvoice is a harmless 204), so the next run simply repeats them. What makes that safe
is that the uploaded bytes never change: the converted file is stored in `blobs/` before its row
is committed, and a source file maps to that stored upload for ever after.

Durability is bought with fsyncs, and they are the send stage's main cost: a commit costs one
(the WAL), a stored upload two (the file, its folder entry). Outside `deferred()` every method
commits and fsyncs on its own. Inside it, transitions are recorded in one open transaction
(each method still atomic, as a savepoint) and become durable together at `sync()`, which the
send stage calls right before every request that changes something at Qonto (import, send):
one commit per request instead of one per transition. Stored uploads are written and fsynced
by a background thread meanwhile, and `sync()` waits for them before committing their rows.
What a crash can cost in deferred mode is only work that no request depended on (validations
since the last `sync()`, the answer of the request in flight), which the next run redoes, as
it would redo a step whose answer was lost.

The database runs with synchronous=NORMAL plus an explicit fsync of the WAL after every commit
(`_make_durable`); in `sync()` that fsync happens outside the lock so that the other thread
does not wait for the disk (outside `deferred()` only one thread writes, and it fsyncs under it).
That is FULL's durability: a commit is on disk before anything that depends on it happens.
Plain NORMAL would not do: in WAL mode it survives the process being killed but not the
machine losing power, which can roll back the last commits. Re-running a lost `importing`,
`sending` or `sent` would be harmless (Qonto's import and send are idempotent), but a lost row
would also forget which invoice numbers were already imported from other bytes, the guard
against sending the same invoice twice.

The package, by concern: `sqlite` (`Outbox`: connection, durability, transitions), `schema`
(tables and their migration), `records` (states, `Item`, `SourceRecord`), `blobs` (stored
uploads), `folder` (the state folder: errors, lost-outbox refusal, organisations, checks).
"""

from __future__ import annotations

from ..errors import OutboxLostError
from .blobs import rebuilt_upload as rebuilt_upload
from .folder import (
    CheckReport,
    OutboxBusyError,
    OutboxCorruptError,
    StateFolderError,
    StoredUploadError,
    check_state,
    organisations,
    refuse_lost_outbox,
    state_error,
)
from .records import FINAL_EINVOICING, STATES, Item, SourceRecord, sha256
from .records import State as State
from .schema import _utf8 as _utf8  # outbox_pg stores the same text
from .sqlite import Outbox

__all__ = ["FINAL_EINVOICING", "STATES", "CheckReport", "Item", "Outbox", "OutboxBusyError",
           "OutboxCorruptError", "OutboxLostError", "SourceRecord", "StateFolderError",
           "StoredUploadError", "check_state", "organisations", "refuse_lost_outbox", "sha256",
           "state_error"]
