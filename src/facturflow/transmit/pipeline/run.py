"""`send_invoices`: the send stage run over many sources, step by step (or as a dry run)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...inputs import expand_inputs
from ..errors import (
    AuthenticationError,
    PermissionDeniedError,
    QontoError,
)
from ..outbox import Item, sha256
from ..qonto import (
    QontoClient,
)
from ..store import (
    OutboxStore,
    StateLocation,
    open_outbox,
    organisations,
    refuse_lost_outbox,
)
from .admit import _admit, _organization, _Reachability, _sending_disabled
from .lookup import NEVER_TWICE, _differences, _QontoNumbers, _twin_refusal, _unchecked
from .options import (
    SYNC_EVERY,
    SYNC_SECONDS,
    Outcome,
    OutcomeKind,
    Progress,
    SendOptions,
    SendSummary,
)
from .sources import Rejected, _read, prepare
from .upload import _Flow
from .wait import _wait


def send_invoices(
    paths: Iterable[str | Path],
    client: QontoClient | None,
    state_dir: StateLocation,
    options: SendOptions = SendOptions(),  # noqa: B008 (frozen: safe to share)
    progress: Progress | None = None,
) -> SendSummary:
    """Run the send stage over files and folders; see the module docstring. `state_dir` is a
    state folder (SQLite outbox) or a `postgresql://` URL (an outbox shared by senders)."""
    files = list(dict.fromkeys(str(p) for p in expand_inputs(Path(p) for p in paths)))
    if options.dry_run or client is None:
        return _dry_run(files, client, state_dir, options)
    org = _organization(client)
    summary = SendSummary(organization=org)
    settings_error = _sending_disabled(client)
    numbers = _QontoNumbers(client, options.lookback_days)
    # Deferred: transitions become durable at outbox.sync(), called right before each request
    # that changes something at Qonto (and every few admissions), not one commit each.
    with open_outbox(state_dir, org, lease_seconds=options.lease_seconds) as outbox, \
            outbox.deferred():
        rows: dict[str, Outcome | str] = {}  # path -> final outcome, or upload sha to follow
        before_sent: set[str] = {i.upload_sha256 for i in outbox.items() if i.state == "sent"}
        reachable = _Reachability(client)
        blocked: set[str] = set()  # failed a pre-flight check in this run
        claimed: set[str] = set()  # admitted in this run
        adopted: set[str] = set()  # found already sent at Qonto, by number, in this run
        total = len(files)
        # Imports and sends start while the next files are validated (see _Flow).
        synced = time.monotonic()
        with _Flow(client, outbox, options, progress, numbers) as flow:
            for index, path in enumerate(files, 1):
                rows[path] = row = _admit(path, outbox, options, reachable, blocked, claimed,
                                          numbers, adopted, flow.adoptions)
                if index % SYNC_EVERY == 0 or time.monotonic() - synced > SYNC_SECONDS:
                    outbox.sync()
                    synced = time.monotonic()
                if progress:
                    progress("validate", index, total)
                if not settings_error:
                    if isinstance(row, str) and row not in blocked:
                        flow.add(row)
                    # Also after a rejected or already-sent file: a run of those must not keep
                    # finished requests unrecorded and the next ones unstarted.
                    flow.pump(block=False)
            wanted = {v for v in rows.values() if isinstance(v, str)}
            if settings_error:
                pending = [i.upload_sha256 for i in outbox.items()
                           if i.upload_sha256 in wanted and i.state != "sent"]
                if pending:
                    outbox.mark_failed(pending, settings_error)
            else:
                flow.pump(block=True)
        if not settings_error and options.wait:
            _wait(client, outbox, wanted, options, progress)
        for path in files:
            value = rows[path]
            if isinstance(value, Outcome):
                summary.outcomes.append(value)
                continue
            item = outbox.get(value)
            assert item is not None
            summary.outcomes.append(_outcome(item, path, value in before_sent or value in adopted,
                                             options.wait))
    return summary


def _outcome(item: Item, path: str, was_sent: bool, waited: bool) -> Outcome:
    if item.state == "sent":
        kind: OutcomeKind = "already_sent" if was_sent else "sent"
        reason = final = final_text = None
        if waited:
            verdict = item.verdict
            final, final_text = verdict.outcome, verdict.describe()
            if verdict.negative:
                kind, reason = "failed", final_text
        return Outcome(path, kind, reason, item.invoice_id, item.invoice_number,
                       item.einvoicing_status, final=final, final_text=final_text)
    return Outcome(path, "failed", item.error or f"stopped in state {item.state}",
                   item.invoice_id, item.invoice_number, item.einvoicing_status)


def _dry_run(files: Sequence[str], client: QontoClient | None, state_dir: StateLocation,
             options: SendOptions) -> SendSummary:
    """Predict what `send` would do, sending nothing and writing nothing.

    Offline (no client), every refusal the outbox can tell is predicted, for each organisation
    it holds: already sent, rejected before, the same number in other bytes or with other
    content, a state folder whose outbox is lost. With a client (the CLI passes one when Qonto
    is configured), also the organisation check and the look-up of invoice numbers at Qonto,
    which are reads only.
    """
    summary = SendSummary()
    numbers: _QontoNumbers | None = None
    if client is not None:
        summary.organization = _organization(client)
        numbers = _QontoNumbers(client, options.lookback_days)
    refuse_lost_outbox(state_dir)
    orgs = organisations(state_dir)
    if summary.organization is not None:
        orgs = [o for o in orgs if o == summary.organization]
    outboxes = [open_outbox(state_dir, org, lock=False) for org in orgs]
    try:
        claimed: dict[str, tuple[str, str, dict[str, str]]] = {}  # number -> (sha, path, content)
        for path in files:
            summary.outcomes.append(_predict(path, outboxes, numbers, options, claimed))
    finally:
        for outbox in outboxes:
            outbox.close()
    return summary


def _predict(path: str, outboxes: Sequence[OutboxStore], numbers: _QontoNumbers | None,
             options: SendOptions, claimed: dict[str, tuple[str, str, dict[str, str]]]
             ) -> Outcome:
    """One input of a dry run: the outcome the real run would give, from the same checks."""
    try:
        data = _read(Path(path), options.limits)
    except OSError as exc:
        return Outcome(path, "rejected", f"cannot read: {exc.strerror or exc}")
    except Rejected as exc:
        return Outcome(path, "rejected", exc.reason)
    source_sha, variant = sha256(data), f"{options.upload}:{options.rules or 'default'}"
    stored: Item | None = None
    for outbox in outboxes:
        known = outbox.lookup_source(source_sha, variant)
        if known is not None and known.verdict == "rejected":
            return Outcome(path, "rejected", known.reason)
        item = outbox.get(known.upload_sha256) if known and known.upload_sha256 else None
        if item is not None and item.state == "sent":
            return Outcome(path, "already_sent", None, item.invoice_id, item.invoice_number,
                           item.einvoicing_status)
        if item is not None and item.invoice_id is not None:
            return Outcome(path, "would_send", f"would send Qonto invoice {item.invoice_id} "
                           "(imported by an earlier run)", item.invoice_id, item.invoice_number)
        stored = stored or item
    if stored is not None:  # the real run uploads the stored bytes, not a new conversion
        number, upload_sha, content = (stored.invoice_number, stored.upload_sha256,
                                       stored.content_fields)
        what = f"would upload {stored.file_name} ({stored.size} bytes, stored by an earlier run)"
    else:
        try:
            prepared = prepare(path, data, options.upload, options.rules, options.limits)
        except Rejected as exc:
            return Outcome(path, "rejected", exc.reason, findings=exc.findings)
        number, upload_sha, content = (prepared.invoice_number, sha256(prepared.upload),
                                       prepared.content)
        what = f"would upload {prepared.file_name} ({len(prepared.upload)} bytes)"
    if number:
        for outbox in outboxes:
            refusal = _twin_refusal(number, upload_sha, content, outbox.by_number(number), set())
            if refusal:
                return Outcome(path, "failed", refusal, invoice_number=number)
        earlier = claimed.get(number)
        if earlier is not None and earlier[0] != upload_sha:
            differs = _differences(content, earlier[2], "in the earlier version")
            reason = (f"invoice number {number} is also in {earlier[1]}, which goes first in "
                      "this run")
            return Outcome(path, "failed", reason + (
                f", and this file's content differs ({'; '.join(differs)}): {NEVER_TWICE}"
                if differs else " (same content in other bytes; not sent twice)"),
                invoice_number=number)
        claimed.setdefault(number, (upload_sha, path, content))
        if numbers is not None:
            try:
                verdict = numbers.verdict(number, content)
            except (AuthenticationError, PermissionDeniedError):
                raise
            except QontoError as exc:
                return Outcome(path, "failed", _unchecked(number, exc), invoice_number=number)
            if isinstance(verdict, str):
                return Outcome(path, "failed", verdict, invoice_number=number)
            if verdict is not None:
                invoice, submitted = verdict
                if submitted:
                    return Outcome(path, "already_sent", "already at Qonto, found by number",
                                   str(invoice["id"]), number)
                what = (f"would send Qonto invoice {invoice['id']} (already imported, found by "
                        "number)")
    return Outcome(path, "would_send", what, invoice_number=number)
