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
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TypeVar

from .. import exitcodes
from ..detect import Document, detect_bytes
from ..errors import FacturflowError, InputError
from ..inputs import expand_inputs
from .errors import (
    AuthenticationError,
    NotFoundError,
    OrganisationUnknownError,
    PermissionDeniedError,
    PreconditionError,
    QontoError,
    ValidationRejectedError,
)
from .fields import document_fields, read_invoice_fields
from .outbox import Item, sha256
from .outbox_pg import DEFAULT_LEASE_SECONDS, ClaimLostError
from .qonto import (
    MAX_IMPORT_FILE_BYTES,
    MAX_IMPORT_FILES,
    MAX_IMPORT_TOTAL_BYTES,
    ImportedInvoice,
    QontoClient,
    UploadFile,
    content_type_for,
)
from .store import (
    OutboxStore,
    StateLocation,
    open_outbox,
    organisations,
    refuse_lost_outbox,
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
            from ..rules import parse_rule_sets

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


@dataclass(frozen=True)
class Prepared:
    """A validated input and the exact bytes to upload for it."""

    path: str
    source_sha: str
    file_name: str
    upload: bytes
    invoice_number: str | None
    buyer_siren: str | None
    content: dict[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """An input that will not be uploaded. `final` verdicts (unreadable, invalid) are remembered
    by source hash; others (a converter missing or failing) are tried again on the next run."""

    def __init__(self, reason: str, findings: Sequence[str] = (), *, final: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.findings = tuple(findings)
        self.final = final


def prepare(path: str, data: bytes, upload: UploadFormat, rules: str | None) -> Prepared:
    """Detect, validate (fatal finding => Rejected) and build the upload bytes of one input."""
    from ..validate import validate

    source_sha = sha256(data)
    try:
        document = detect_bytes(data, name=path)
    except InputError as exc:
        raise Rejected(f"unreadable: {exc.message}") from exc
    report = validate(document, rules)
    if not report.ok:
        fatal = [f"{f.rule}: {f.message}" for f in report.fatal]
        if report.error:
            fatal.insert(0, report.error)
        if not fatal:
            fatal = ["a required validation layer could not run"]
        raise Rejected(f"invalid: {len(fatal)} fatal finding(s), first: {fatal[0]}", fatal)
    fields = document_fields(document)
    stem = Path(path).stem or "invoice"
    if document.container == "pdf":
        # A Factur-X PDF goes as it is; with --upload xml, its embedded XML goes instead.
        body, name = (data, f"{stem}.pdf") if upload == "facturx" else (document.xml, f"{stem}.xml")
    elif upload == "xml":
        body, name = data, f"{stem}.xml"
    else:
        body, name = _to_facturx(document), f"{stem}.pdf"
    return Prepared(path, source_sha, name, body, fields.get("number"), fields.get("buyer_siren"),
                    content_of(fields))


# What "the same invoice" means when two versions carry one invoice number: the fields that
# both the invoice and Qonto's record of it (GET /v2/client_invoices, API.md §6.1) carry.
# Only fields known on both sides are compared; none known counts as the same invoice, since
# importing it again could only make a duplicate.
# The document type (BT-3) too: a credit note is never "the same invoice" as the invoice that
# carries its number, even with the same date and amounts (adopting one for the other would
# report a credit note sent that never left). Qonto's record has no type; its stored file does.
CONTENT_LABELS = {"issue_date": "issue date", "currency": "currency",
                  "total": "total with VAT", "vat": "VAT total", "type": "document type (BT-3)"}


def content_of(fields: Mapping[str, Any]) -> dict[str, str]:
    """The compared fields of an invoice (document_fields), normalised."""
    out: dict[str, str] = {}
    if isinstance(fields.get("issue_date"), str):
        out["issue_date"] = fields["issue_date"]
    if isinstance(fields.get("currency"), str) and fields["currency"].strip():
        out["currency"] = fields["currency"].strip().upper()
    for key in ("total", "vat"):
        amount = _amount(fields.get(key))
        if amount is not None:
            out[key] = amount
    if isinstance(fields.get("type_code"), str) and fields["type_code"].strip():
        out["type"] = fields["type_code"].strip()
    return out


def qonto_content(invoice: Mapping[str, Any]) -> dict[str, str]:
    """The compared fields of a client invoice as Qonto returns it."""
    out: dict[str, str] = {}
    issue = invoice.get("issue_date")
    if isinstance(issue, str) and len(issue) >= 10:
        out["issue_date"] = issue[:10]
    currency = invoice.get("currency")
    if isinstance(currency, str) and currency.strip():
        out["currency"] = currency.strip().upper()
    for key, name in (("total", "total_amount"), ("vat", "vat_amount")):
        cents = invoice.get(f"{name}_cents")
        money = invoice.get(name)
        value = money.get("value") if isinstance(money, dict) else money
        amount = _amount(value)
        if amount is None and isinstance(cents, int) and not isinstance(cents, bool):
            amount = _amount(str(Decimal(cents) / 100))
        if amount is not None:
            out[key] = amount
    return out


def _amount(value: object) -> str | None:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    try:
        return str(Decimal(str(value).strip()).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError):
        return None


def _differences(mine: Mapping[str, str], theirs: Mapping[str, str], where: str) -> list[str]:
    return [f"{label} {mine[key]} here, {theirs[key]} {where}"
            for key, label in CONTENT_LABELS.items()
            if key in mine and key in theirs and mine[key] != theirs[key]]


NEVER_TWICE = ("facturflow never sends two documents under one number (an invoice and a credit "
               "note included): a credit note takes a number of its own; to correct an invoice "
               "already issued, issue a credit note for it and a new invoice under a new number")


def _to_facturx(document: Document) -> bytes:
    try:
        from ..convert import convert
    except ImportError as exc:
        raise Rejected(
            "cannot make a Factur-X PDF: facturflow.convert is not available in this build "
            f"({exc}); use --upload xml to send the XML as it is", final=False
        ) from exc
    try:
        result = convert(document, to="facturx")
    except FacturflowError as exc:
        raise Rejected(f"conversion to Factur-X failed: {exc.message}", final=False) from exc
    except Exception as exc:  # a converter bug must reject this input, not crash the batch
        raise Rejected(
            f"conversion to Factur-X failed ({type(exc).__name__}: {exc}); "
            "use --upload xml to send the XML as it is", final=False
        ) from exc
    return result.data


def _read(path: Path) -> bytes:
    return path.read_bytes()


def send_invoices(
    paths: Iterable[str | Path],
    client: QontoClient | None,
    state_dir: StateLocation,
    options: SendOptions = SendOptions(),
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
        data = _read(Path(path))
    except OSError as exc:
        return Outcome(path, "rejected", f"cannot read: {exc.strerror or exc}")
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
            prepared = prepare(path, data, options.upload, options.rules)
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


def _organization(client: QontoClient) -> str:
    """The organisation the outbox is keyed by: Qonto's id, and nothing else.

    Keying by anything else (the API key's login, the host) would give the same organisation
    a second, empty outbox, the state loss that sends invoices twice. An outage (5xx, no
    answer, 429 after the retries) propagates as what it is.
    """
    try:
        org = client.organization()
    except AuthenticationError:
        raise
    except (PermissionDeniedError, NotFoundError, ValidationRejectedError) as exc:
        raise OrganisationUnknownError(
            f"cannot read the organisation from Qonto (GET /v2/organization: {exc.message}); "
            "facturflow keys its record of sent invoices by the organisation's id and sends "
            "nothing without it: give the credentials the organization.read scope (OAuth) or use "
            "the organisation's API key, then run again"
        ) from exc
    ident = org.get("id")
    if not isinstance(ident, str) or not ident:
        raise OrganisationUnknownError(
            "Qonto's answer to GET /v2/organization has no organisation id; facturflow keys its "
            "record of sent invoices by it and sends nothing without it")
    return ident


def _sending_disabled(client: QontoClient) -> str | None:
    """The reason sending cannot work, or None (unknown counts as allowed: send will tell)."""
    try:
        settings = client.einvoicing_settings()
    except AuthenticationError:
        raise
    except QontoError:
        return None  # not knowable now (scope, outage): send_by_einvoice's 412 will tell
    if settings.sending_enabled:
        return None
    return f"e-invoicing sending is {settings.sending_status} for this organisation (pre-flight)"


class _Reachability:
    """Whether a buyer can receive e-invoices, when Qonto already knows the buyer as a client."""

    def __init__(self, client: QontoClient) -> None:
        self._client = client
        self._by_siren: dict[str, bool] | None = None

    def unreachable(self, siren: str | None) -> bool:
        if not siren:
            return False
        if self._by_siren is None:
            self._by_siren = {}
            try:
                for c in self._client.iter_clients():
                    key = c.get("siren") or str(c.get("e_invoicing_address") or "")[:9]
                    if key and isinstance(c.get("e_invoicing_reachable"), bool):
                        self._by_siren[str(key)] = bool(c["e_invoicing_reachable"])
            except AuthenticationError:
                raise
            except QontoError:
                self._by_siren = {}  # cannot be known now: send_by_einvoice's 412 will say
        return self._by_siren.get(siren) is False


def _admit(path: str, outbox: OutboxStore, options: SendOptions, reachable: _Reachability,
           blocked: set[str], claimed: set[str], numbers: _QontoNumbers | None = None,
           adopted: set[str] | None = None,
           adoptions: dict[str, tuple[str, bool]] | None = None) -> Outcome | str:
    """Put one input in the outbox (or find it there); an Outcome when it goes no further."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # SQLite and Qonto's upload both need the name as UTF-8 text
        return Outcome(path, "rejected", "the file name is not valid UTF-8: rename the file")
    try:
        data = _read(Path(path))
    except OSError as exc:
        return Outcome(path, "rejected", f"cannot read: {exc.strerror or exc}")
    source_sha = sha256(data)
    # A verdict depends on the rules applied and on what is uploaded: both are in the key.
    variant = f"{options.upload}:{options.rules or 'default'}"
    known = outbox.lookup_source(source_sha, variant)
    if known is not None and known.verdict == "rejected":
        return Outcome(path, "rejected", known.reason)
    item = outbox.get(known.upload_sha256) if known and known.upload_sha256 else None
    if item is None:
        try:
            prepared = prepare(path, data, options.upload, options.rules)
        except Rejected as exc:
            if exc.final:
                outbox.record_rejected(source_sha, variant, path, exc.reason)
            return Outcome(path, "rejected", exc.reason, findings=exc.findings)
        item = outbox.record_validated(
            source_sha=source_sha, source_path=path, upload_format=variant,
            file_name=prepared.file_name, upload=prepared.upload,
            invoice_number=prepared.invoice_number, buyer_siren=prepared.buyer_siren,
            content=prepared.content,
        )
    sha = item.upload_sha256
    if item.invoice_id is None and item.invoice_number:
        # The same invoice in other bytes (another format, a re-export) must not go out twice,
        # and another invoice under the same number must not go out at all.
        refusal = _twin_refusal(item.invoice_number, sha, item.content_fields,
                                outbox.by_number(item.invoice_number), claimed)
        if refusal is None and numbers is not None:
            # No record here: Qonto may still have it (a lost or other state folder).
            try:
                verdict = numbers.verdict(item.invoice_number, item.content_fields)
            except (AuthenticationError, PermissionDeniedError):
                raise
            except QontoError as exc:
                verdict = _unchecked(item.invoice_number, exc)
            if isinstance(verdict, str):
                refusal = verdict
            elif verdict is not None:
                invoice, submitted = verdict
                outbox.mark_adopted(sha, str(invoice["id"]), sent=submitted)
                if submitted and adopted is not None:
                    adopted.add(sha)
                item = outbox.get(sha) or item
                if item.invoice_id is None and adoptions is not None:
                    # A shared outbox refused it: another sender holds the invoice (its import
                    # is what Qonto has). Adopted when this run gets the claim, if still due.
                    adoptions[sha] = (str(invoice["id"]), submitted)
        if refusal is not None:
            blocked.add(sha)
            outbox.mark_failed([sha], refusal)
            return sha
    claimed.add(sha)
    if item.state != "sent" and item.invoice_id is None and reachable.unreachable(
        item.buyer_siren
    ):
        blocked.add(sha)
        outbox.mark_failed([sha], f"recipient {item.buyer_siren} is not reachable on "
                           "e-invoicing (pre-flight)")
    return sha


def _twin_refusal(number: str, upload_sha: str, content: Mapping[str, str],
                  twins: Iterable[Item], claimed: set[str]) -> str | None:
    """Why an invoice numbered `number` must not go out, given the outbox's items with that
    number (another item counts once it has a Qonto id or was admitted in this run)."""
    twin = next((o for o in twins if o.upload_sha256 != upload_sha
                 and (o.invoice_id is not None or o.upload_sha256 in claimed)), None)
    if twin is None:
        return None
    if twin.state == "sent":
        when = f"sent on {_when(twin.sent_at)} as Qonto invoice {twin.invoice_id}"
    elif twin.invoice_id is not None:
        when = f"imported as Qonto invoice {twin.invoice_id} (not sent yet)"
    else:
        when = "admitted earlier in this run"
    differs = _differences(content, twin.content_fields, "in the earlier version")
    if differs:
        return (f"invoice number {number} was already {when}, from {twin.source_path}, and this "
                f"file's content differs ({'; '.join(differs)}): {NEVER_TWICE}")
    return (f"invoice number {number} is already in the outbox from {twin.source_path}, {when} "
            "(same content in other bytes; not sent twice)")


def _unchecked(number: str, exc: QontoError) -> str:
    return (f"cannot ask Qonto whether invoice number {number} already exists, so it is not "
            f"imported (will retry on the next run): {exc.message}")


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "an unknown date"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _submitted(invoice: Mapping[str, Any]) -> bool:
    """Whether Qonto's record shows the invoice went to the network (API.md §6.2: `pending`,
    or no status, until it is deposited)."""
    status = invoice.get("einvoicing_status")
    events = invoice.get("einvoicing_lifecycle_events")
    return bool(events) or status not in (None, "", "pending")


class _QontoNumbers:
    """The organisation's client invoices at Qonto, by number: listed once per run, lazily (only
    when an invoice with no record must be imported), paged, oldest first; then, around each
    import, only what was created since (`arrived`, `settle`: two senders at once).

    Qonto's list has no filter by number (API.md §5.6): it is listed from `created_at_from` =
    now - `days`, imported invoices included (no `exclude_imported`), and widened further back
    when an invoice's issue date is older than what was listed (a second listing, up to where
    the first began): no invoice is imported before it is issued, so what could clash with it
    is listed. Qonto's idempotent import (same bytes, same id) is no help here: a converted
    file's bytes may differ from one conversion to the next.
    """

    MARGIN = timedelta(days=2)  # time zones and clocks between the issue date and Qonto's
    # Nothing was created at Qonto's API before this: an issue date older than it (year 1 is a
    # valid EN 16931 date without the French rules) lists from here, not from before datetime's
    # range (OverflowError) or from a date the API may refuse (one failed listing per run).
    FLOOR = datetime(2000, 1, 1, tzinfo=UTC)

    # Right before each import, what was created at Qonto since the newest invoice listed, minus
    # this (commit or replica lag: an invoice may show up in the list after a later one).
    LAG = timedelta(minutes=1)

    def __init__(self, client: QontoClient, days: int) -> None:
        self._client = client
        self._days = days
        self._by_number: dict[str, dict[str, dict[str, Any]]] = {}
        self._since: datetime | None = None  # listed from then on
        self._newest: datetime | None = None  # Qonto's created_at of the newest invoice listed
        self._error: QontoError | None = None

    def verdict(self, number: str, content: Mapping[str, str]
                ) -> tuple[dict[str, Any], bool] | str | None:
        """None: unknown to Qonto. (invoice, already submitted): the invoice to adopt. A str:
        Qonto has another invoice under this number (why it is refused)."""
        found = self.find(number, content.get("issue_date"))
        if not found:
            return None
        submitted = [i for i in found if _submitted(i)]
        invoice = (submitted or found)[0]
        differs = _differences(content, qonto_content(invoice), "at Qonto")
        if not differs:  # what Qonto's record does not carry (the type), its stored file does
            differs = _differences(content, self._stored_content(invoice),
                                   "in the file Qonto holds")
        if differs:
            state = "sent" if _submitted(invoice) else "imported, not sent yet"
            return (f"invoice number {number} already exists at Qonto as invoice {invoice['id']} "
                    f"(created {invoice.get('created_at') or 'at an unknown date'}, {state}), and "
                    f"this file's content differs ({'; '.join(differs)}): {NEVER_TWICE}")
        return invoice, bool(submitted)

    def _stored_content(self, invoice: Mapping[str, Any]) -> dict[str, str]:
        """The compared fields of the file Qonto holds for `invoice` (its attachment, API.md
        §6.1, §5.10); empty when there is none or the credentials may not read it, and then
        Qonto's record alone decides. An outage propagates: the invoice waits for a run
        that can tell."""
        attachment = invoice.get("attachment_id")
        if not isinstance(attachment, str) or not attachment:
            return {}
        try:
            name, data = self._client.download_attachment(attachment)
        except (PermissionDeniedError, NotFoundError):
            return {}
        fields = read_invoice_fields(data, name)
        return content_of(fields) if fields else {}

    def find(self, number: str, issue_date: str | None) -> list[dict[str, Any]]:
        if self._error is not None:
            raise self._error  # one failed listing per run: the run's other invoices wait too
        start = datetime.now(UTC) - timedelta(days=self._days)
        if issue_date:
            try:
                issued = date.fromisoformat(issue_date)
            except ValueError:
                pass
            else:
                issued_at = datetime(issued.year, issued.month, issued.day, tzinfo=UTC)
                start = min(start, max(self.FLOOR + self.MARGIN, issued_at) - self.MARGIN)
        if self._since is None or start < self._since:
            self._list(start, self._since)
        return sorted(self._by_number.get(number, {}).values(),
                      key=lambda i: str(i.get("created_at") or ""))

    def _list(self, start: datetime, until: datetime | None) -> None:
        params: dict[str, Any] = {"filter[created_at_from]": _iso(start),
                                  "sort_by": "created_at:asc", "per_page": 100}
        if until is not None:
            params["filter[created_at_to]"] = _iso(until)
        try:
            for invoice in self._client.iter_client_invoices(**params):
                self._add(invoice)
        except (AuthenticationError, PermissionDeniedError):
            raise
        except QontoError as exc:
            self._error = exc
            raise
        if self._newest is None:  # nothing at Qonto yet: from our clock (minus a margin)
            self._newest = datetime.now(UTC) - self.MARGIN
        self._since = start

    def _recent(self) -> list[tuple[str | None, dict[str, Any]]]:
        """(number, invoice) of what Qonto created since the newest invoice listed (minus LAG),
        recorded as listed; oldest first."""
        assert self._newest is not None
        params: dict[str, Any] = {"filter[created_at_from]": _iso(self._newest - self.LAG),
                                  "sort_by": "created_at:asc", "per_page": 100}
        return [(self._add(i), i) for i in self._client.iter_client_invoices(**params)]

    def settle(self, batch: Sequence[Item], ids: Mapping[str, str]
               ) -> tuple[dict[str, str], dict[str, str]]:
        """Right after `batch` was imported as `ids` (upload sha -> Qonto id): the ids to send,
        and the invoices held back with why.

        Two senders that passed the check before import in the same moment have each imported
        the invoice: Qonto then holds its number twice. Each of them keeps the earliest one
        (by Qonto's `created_at`, then id), so both send the same invoice, which a repeated
        send_by_einvoice does not resubmit; the later import stays at Qonto, never sent. With
        other content in the earliest one, this file is refused. When Qonto cannot be asked,
        nothing is recorded as imported: the next run adopts the earliest by number."""
        mine = {i.upload_sha256: i for i in batch if i.upload_sha256 in ids and i.invoice_number}
        if not mine or self._newest is None:
            return dict(ids), {}
        keep, held = dict(ids), {}
        try:
            fresh = self._recent()
        except QontoError as exc:
            for sha, item in mine.items():
                del keep[sha]
                held[sha] = (f"imported as Qonto invoice {ids[sha]}, but not sent: "
                             + _unchecked(str(item.invoice_number), exc))
            return keep, held
        for sha, item in mine.items():
            number = str(item.invoice_number)
            others = [i for n, i in fresh if n == number and i.get("id") != ids[sha]]
            if not others:
                continue
            own = next((i for n, i in fresh if i.get("id") == ids[sha]), None)
            first = min(others + ([own] if own else []), key=_created)
            if own is not None and first is own:
                continue
            differs = _differences(item.content_fields, qonto_content(first), "at Qonto")
            if differs:
                del keep[sha]
                held[sha] = (f"invoice number {number} reached Qonto in the same moment from "
                             f"another sender, as invoice {first.get('id')}, and this file's "
                             f"content differs ({'; '.join(differs)}); its own import "
                             f"({ids[sha]}) is not sent: {NEVER_TWICE}")
            else:
                keep[sha] = str(first["id"])
        return keep, held

    def _add(self, invoice: dict[str, Any]) -> str | None:
        """Record a listed invoice; its number."""
        number = invoice.get("number") or invoice.get("invoice_number")
        ident = invoice.get("id")
        if not isinstance(number, str) or not isinstance(ident, str):
            return None
        self._by_number.setdefault(number, {})[ident] = invoice
        created = invoice.get("created_at")
        try:
            moment = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        except ValueError:
            return number
        if moment.tzinfo is not None and (self._newest is None or moment > self._newest):
            self._newest = moment
        return number

    def arrived(self, batch: Sequence[Item]) -> dict[str, str]:
        """Right before `batch` is imported: those of its invoices whose number reached Qonto
        since it was listed (another process or machine sending the same invoice at the same
        moment, from another state folder), each with why it is held back. Narrows that race
        from a whole run to the moment between this listing and the import; it cannot close
        it (Qonto has no lock, nor a uniqueness check by number, that a client could use)."""
        wanted = {i.invoice_number: i.upload_sha256 for i in batch if i.invoice_number}
        if not wanted or self._newest is None:
            return {}
        try:
            fresh = self._recent()
        except QontoError as exc:
            return {sha: _unchecked(number, exc) for number, sha in wanted.items()}
        held: dict[str, str] = {}
        for number, invoice in fresh:
            if number in wanted and wanted[number] not in held:
                held[wanted[number]] = (
                    f"invoice number {number} reached Qonto while this run was going, as "
                    f"invoice {invoice.get('id')} (created {invoice.get('created_at')}): another "
                    "process or machine is sending it; not imported (the next run adopts that "
                    "invoice, or refuses this file if its content differs)")
        return held


def _created(invoice: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key of Qonto invoices by creation: `created_at` (ISO 8601, UTC), then id."""
    created = str(invoice.get("created_at") or "")
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        created = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return created, str(invoice.get("id") or "")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Flow:
    """Imports and sends, one request at a time in a worker thread, while the caller validates.

    The calling thread records each answer and the next request's own transition
    (`importing`, `sending`); the worker then calls `outbox.sync()` and only after it makes
    the request. So before any request leaves, its invoices' transitions and every answer
    received before it are durable (the rule of facturflow.transmit.outbox); validations
    recorded meanwhile by the calling thread concern other invoices and are committed with it
    or at the next sync. Invoices go in import batches of up to `batch_size` files
    (within Qonto's limits, unique file names in a batch), each batch as soon as it is full;
    imported invoices are sent before the next batch is imported.

    Each invoice is claimed (`outbox.claim`) right before its import or send. With a SQLite
    outbox every claim succeeds (the folder's lock makes this process the only writer); with
    a shared PostgreSQL one, an invoice another sender holds is left to it and looked at
    again at the end, until it is sent or its claim is free (the other sender finished, or
    died and its lease ran out): then this run takes it up.
    """

    # With a shared outbox, how long to wait between two looks at the invoices other senders
    # hold, at the end of a run.
    RECHECK_SECONDS = 0.25

    def __init__(self, client: QontoClient, outbox: OutboxStore, options: SendOptions,
                 progress: Progress | None, numbers: _QontoNumbers | None = None) -> None:
        self.client, self.outbox, self.progress = client, outbox, progress
        self.numbers = numbers  # the numbers check at Qonto right before and after an import
        self.size = max(1, min(options.batch_size, MAX_IMPORT_FILES))
        self.seen: set[str] = set()
        self.filling: list[Item] = []  # admitted, waiting for their batch to fill up
        self.batches: list[list[Item]] = []  # ready to import, in order
        self.sends: deque[Item] = deque()
        self.elsewhere: set[str] = set()  # held by another sender's claim (shared outbox)
        # Found at Qonto by number while another sender held them: upload sha -> (Qonto id,
        # already submitted), adopted once claimed (shared outbox).
        self.adoptions: dict[str, tuple[str, bool]] = {}
        self.running: tuple[str, list[Item], Future[Any]] | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="facturflow-send")
        self.imported = self.import_total = self.sent = self.send_total = 0

    def __enter__(self) -> _Flow:
        return self

    def __exit__(self, *exc: object) -> None:
        # On an error, the request in flight (if any) ends before the client is closed; its
        # invoice stays `importing`/`sending`, which the next run repeats safely.
        self.pool.shutdown(wait=True)

    def add(self, upload_sha: str) -> None:
        """Queue an admitted invoice for whatever it still needs (import and send, or send)."""
        if upload_sha in self.seen:
            return
        self.seen.add(upload_sha)
        item = self.outbox.get(upload_sha)
        if item is None or item.state == "sent":
            return
        if item.invoice_id is not None:
            self.sends.append(item)
            self.send_total += 1
        elif item.size > MAX_IMPORT_FILE_BYTES:
            self.outbox.mark_failed([upload_sha], "file larger than Qonto's import limit "
                                    f"({MAX_IMPORT_FILE_BYTES} bytes)")
        else:
            self._fill(item)

    def _fill(self, item: Item) -> None:
        batch = self.filling
        cost = _cost(item)
        if batch and (sum(_cost(i) for i in batch) + cost > MAX_IMPORT_TOTAL_BYTES or any(
            i.file_name == item.file_name for i in batch
        )):
            self._close_batch()
        self.filling.append(item)
        if len(self.filling) >= self.size:
            self._close_batch()

    def _close_batch(self) -> None:
        if self.filling:
            self.batches.append(self.filling)
            self.import_total += 1
            self.filling = []

    def pump(self, *, block: bool) -> None:
        """Record finished requests and start the next ones; with `block`, until all are done
        (a batch still filling up then goes as it is)."""
        while True:
            if self.running is not None:
                if not block and not self.running[2].done():
                    return
                self._finish(*self.running)
                self.running = None
            if block:
                self._close_batch()
            if not self._start():
                if not (block and self.elsewhere):
                    return
                time.sleep(self.RECHECK_SECONDS)
                self._recheck()

    def _recheck(self) -> None:
        """Queue again the invoices other senders held: those not sent yet are claimed anew
        (and left again if still held)."""
        for sha in sorted(self.elsewhere):
            self.elsewhere.discard(sha)
            self.seen.discard(sha)
            self.add(sha)

    def _claimed(self, items: Sequence[Item]) -> list[Item]:
        """Those of `items` this run may take on now, as they are now; the others are left
        to the sender that holds them, or were sent meanwhile."""
        mine = self.outbox.claim([i.upload_sha256 for i in items])
        for item in items:
            if item.upload_sha256 not in mine:
                now = self.outbox.get(item.upload_sha256)
                if now is not None and now.state != "sent":
                    self.elsewhere.add(item.upload_sha256)
        return [mine[i.upload_sha256] for i in items if i.upload_sha256 in mine]

    def _start(self) -> bool:
        """Start the next request: a send first (imported invoices go out before the next
        batch is imported), else the next import batch; False when there is none."""
        while self.sends or self.batches:
            if self.sends:
                if self._start_send(self.sends.popleft()):
                    return True
            elif self._start_import(self.batches.pop(0)):
                return True
        return False

    def _start_send(self, queued: Item) -> bool:
        claimed = self._claimed([queued])
        if not claimed or claimed[0].state == "sent":
            return False
        item = claimed[0]
        assert item.invoice_id is not None
        try:
            self.outbox.mark_sending(item.upload_sha256)
        except ClaimLostError:  # taken over while this sender was stopped: the other's now
            self.elsewhere.add(item.upload_sha256)
            return False
        self.running = ("send", [item], self.pool.submit(
            self._durably, self.client.send_by_einvoice, item.invoice_id))
        return True

    def _start_import(self, queued: list[Item]) -> bool:
        outbox = self.outbox
        batch = self._adopt(self._claimed(queued))
        held = self.numbers.arrived(batch) if self.numbers is not None and batch else {}
        if held and outbox.shared:
            held = self._taken_over(batch, held)
            batch = self._adopt(batch)
        # Imported by another sender (or adopted) since it was queued: only the send is left.
        imported = [i for i in batch if i.invoice_id is not None]
        self.sends.extend(imported)
        self.send_total += len(imported)
        for sha, reason in held.items():
            outbox.mark_failed([sha], reason)
        batch = [i for i in batch if i.invoice_id is None and i.upload_sha256 not in held]
        if not batch:  # all held back, or taken care of: on to the next request
            self.import_total -= 1
            return False
        try:
            outbox.mark_importing([i.upload_sha256 for i in batch])
        except ClaimLostError:  # one was taken over while this sender was stopped: nothing
            self.elsewhere.update(i.upload_sha256 for i in batch)  # recorded; claimed anew
            self.import_total -= 1
            return False
        files = [UploadFile(i.file_name, outbox.blob(i), content_type_for(i.file_name))
                 for i in batch]
        self.running = ("import", batch, self.pool.submit(
            self._durably, self.client.import_client_invoices, files))
        return True

    def _adopt(self, items: list[Item]) -> list[Item]:
        """Adopt, now that this run holds their claim, the invoices found at Qonto by number
        while another sender held them; the items as they are then (sent ones left out)."""
        out: list[Item] = []
        for item in items:
            due = self.adoptions.pop(item.upload_sha256, None)
            if due is not None and item.invoice_id is None:
                self.outbox.mark_adopted(item.upload_sha256, due[0], sent=due[1])
                item = self.outbox.get(item.upload_sha256) or item
            if item.state != "sent":
                out.append(item)
        return out

    def _taken_over(self, batch: list[Item], held: dict[str, str]) -> dict[str, str]:
        """Shared outbox: of the invoices whose number reached Qonto since the listing, those
        an earlier attempt was importing (a sender that died, whose claim this run took over)
        may be that attempt's import: Qonto's record decides, as the next run's admission
        would (same content: adopted; other content: refused). The others stay held."""
        assert self.numbers is not None
        still = dict(held)
        for item in batch:
            if item.upload_sha256 not in held or item.state != "importing" or \
                    not item.invoice_number:
                continue
            try:
                verdict = self.numbers.verdict(item.invoice_number, item.content_fields)
            except QontoError:
                continue
            if isinstance(verdict, str):
                still[item.upload_sha256] = verdict
            elif verdict is not None:
                self.adoptions[item.upload_sha256] = (str(verdict[0]["id"]), verdict[1])
                del still[item.upload_sha256]
        return still

    def _durably(self, request: Callable[[T], R], argument: T) -> R:
        """In the worker: commit everything recorded so far (this request's own transition and
        every answer before it), then make the request. The fsync overlaps validation."""
        self.outbox.sync()
        return request(argument)

    def _finish(self, kind: str, batch: list[Item], future: Future[Any]) -> None:
        try:
            answer, error = future.result(), None
        except QontoError as exc:
            answer, error = None, exc
        if kind == "send":
            self._sent(batch[0], error)
        else:
            self._imported(batch, answer, error)

    def _sent(self, item: Item, error: QontoError | None) -> None:
        outbox, sha = self.outbox, item.upload_sha256
        if isinstance(error, AuthenticationError | PermissionDeniedError):
            raise error
        if isinstance(error, PreconditionError):
            outbox.mark_failed([sha], f"send refused: {error.message}")
        elif isinstance(error, NotFoundError):
            outbox.mark_failed([sha], f"invoice unknown to Qonto: {error.message}")
        elif error is not None:
            outbox.mark_failed([sha], f"send failed (will retry on the next run): {error.message}")
        else:
            outbox.mark_sent(sha)
        self.sent += 1
        if self.progress:
            self.progress("send", self.sent, self.send_total)

    def _imported(self, batch: list[Item], imported: list[ImportedInvoice] | None,
                  error: QontoError | None) -> None:
        outbox = self.outbox
        shas = [i.upload_sha256 for i in batch]
        self.imported += 1
        if self.progress:
            self.progress("import", self.imported, self.import_total)
        if isinstance(error, AuthenticationError | PermissionDeniedError):
            raise error
        if isinstance(error, ValidationRejectedError):
            # All-or-nothing: find the file Qonto points at, fail it, retry the others.
            index = _pointed_index(error, len(batch))
            if index is not None:
                outbox.mark_failed([shas[index]], f"import refused: {error.message}")
                rest = [i for n, i in enumerate(batch) if n != index]
                if rest:
                    self.batches.insert(0, rest)
                    self.import_total += 1
            elif len(batch) > 1:
                outbox.mark_failed(shas, f"import refused in a batch, retrying one by one: "
                                   f"{error.message}")
                self.batches[0:0] = [[i] for i in batch]
                self.import_total += len(batch)
            else:
                outbox.mark_failed(shas, f"import refused: {error.message}")
            return
        if error is not None or imported is None:
            message = error.message if error is not None else "no answer"
            outbox.mark_failed(shas, f"import failed (will retry on the next run): {message}")
            return
        by_name = {r.file_name: r.invoice_id for r in imported}
        ids = {i.upload_sha256: by_name[i.file_name] for i in batch if i.file_name in by_name}
        if len(ids) < len(batch) and len(imported) == len(batch):
            # The answer's names differ from ours: its order is then the only link left.
            ids = {i.upload_sha256: r.invoice_id for i, r in zip(batch, imported, strict=True)}
        held: dict[str, str] = {}
        if self.numbers is not None:
            ids, held = self.numbers.settle(batch, ids)
            for sha, reason in held.items():
                outbox.mark_failed([sha], reason)
        outbox.mark_imported(ids)
        missing = [s for s in shas if s not in ids and s not in held]
        if missing:
            outbox.mark_failed(missing, "import answer did not list this file")
        for sha in ids:
            item = outbox.get(sha)
            assert item is not None
            self.sends.append(item)
            self.send_total += 1


def _cost(item: Item) -> int:
    """An upload's share of the import request's size (multipart headers included)."""
    return item.size + 256 + len(item.file_name)


def _pointed_index(exc: ValidationRejectedError, count: int) -> int | None:
    for entry in exc.errors:
        if entry.pointer and entry.pointer.startswith("/client_invoices/"):
            tail = entry.pointer.rsplit("/", 1)[-1]
            if tail.isdigit() and int(tail) < count:
                return int(tail)
    return None


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


__all__ = ["Outcome", "Prepared", "Rejected", "SendOptions", "SendSummary", "prepare",
           "refresh_status", "send_invoices"]
