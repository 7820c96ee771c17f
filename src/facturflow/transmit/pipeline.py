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

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from .. import exitcodes
from ..detect import Document, detect_bytes
from ..errors import FacturflowError, InputError
from ..inputs import expand_inputs
from .errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    QontoError,
    ValidationRejectedError,
)
from .fields import document_fields
from .outbox import Item, Outbox, sha256
from .qonto import (
    MAX_IMPORT_FILE_BYTES,
    MAX_IMPORT_FILES,
    MAX_IMPORT_TOTAL_BYTES,
    ImportedInvoice,
    QontoClient,
    UploadFile,
    content_type_for,
)

# While validating, the outbox commits at least every SYNC_EVERY admissions or SYNC_SECONDS
# (besides before each request): a crash then costs little work, and the write transaction is
# never held long (a reader such as `facturflow status` waits for it only if it must write).
SYNC_EVERY = 50
SYNC_SECONDS = 1.0

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
    return Prepared(path, source_sha, name, body, fields.get("number"), fields.get("buyer_siren"))


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
    state_dir: str | Path,
    options: SendOptions = SendOptions(),
    progress: Progress | None = None,
) -> SendSummary:
    """Run the send stage over files and folders; see the module docstring."""
    files = list(dict.fromkeys(str(p) for p in expand_inputs(Path(p) for p in paths)))
    summary = SendSummary()
    if options.dry_run or client is None:
        for path in files:
            summary.outcomes.append(_dry_run(path, options))
        return summary
    org = _organization(client)
    summary.organization = org
    settings_error = _sending_disabled(client)
    # Deferred: transitions become durable at outbox.sync(), called right before each request
    # that changes something at Qonto (and every few admissions), not one commit each.
    with Outbox(state_dir, org) as outbox, outbox.deferred():
        rows: dict[str, Outcome | str] = {}  # path -> final outcome, or upload sha to follow
        before_sent: set[str] = {i.upload_sha256 for i in outbox.items() if i.state == "sent"}
        reachable = _Reachability(client)
        blocked: set[str] = set()  # failed a pre-flight check in this run
        claimed: set[str] = set()  # admitted in this run
        total = len(files)
        # Imports and sends start while the next files are validated (see _Flow).
        synced = time.monotonic()
        with _Flow(client, outbox, options, progress) as flow:
            for index, path in enumerate(files, 1):
                rows[path] = row = _admit(path, outbox, options, reachable, blocked, claimed)
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
            summary.outcomes.append(_outcome(item, path, value in before_sent, options.wait))
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


def _dry_run(path: str, options: SendOptions) -> Outcome:
    try:
        prepared = prepare(path, _read(Path(path)), options.upload, options.rules)
    except Rejected as exc:
        return Outcome(path, "rejected", exc.reason, findings=exc.findings)
    except OSError as exc:
        return Outcome(path, "rejected", f"cannot read: {exc.strerror or exc}")
    return Outcome(path, "would_send", f"would upload {prepared.file_name} "
                   f"({len(prepared.upload)} bytes)", invoice_number=prepared.invoice_number)


def _organization(client: QontoClient) -> str:
    """The organisation the outbox is keyed by: Qonto's id, or the API key's login."""
    try:
        org = client.organization()
    except PermissionDeniedError:
        return client.config.organization_hint
    return str(org.get("id") or org.get("slug") or client.config.organization_hint)


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


def _admit(path: str, outbox: Outbox, options: SendOptions, reachable: _Reachability,
           blocked: set[str], claimed: set[str]) -> Outcome | str:
    """Put one input in the outbox (or find it there); an Outcome when it goes no further."""
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
        )
    if item.invoice_id is None and item.invoice_number:
        # The same invoice in other bytes (another format, a re-export) must not go out twice.
        twin = next((o for o in outbox.by_number(item.invoice_number)
                     if o.upload_sha256 != item.upload_sha256
                     and (o.invoice_id is not None or o.upload_sha256 in claimed)), None)
        if twin is not None:
            blocked.add(item.upload_sha256)
            outbox.mark_failed([item.upload_sha256],
                               f"invoice number {item.invoice_number} is already in the outbox "
                               f"from {twin.source_path} (not sent twice)")
            return item.upload_sha256
    claimed.add(item.upload_sha256)
    if item.state != "sent" and item.invoice_id is None and reachable.unreachable(
        item.buyer_siren
    ):
        blocked.add(item.upload_sha256)
        outbox.mark_failed([item.upload_sha256],
                           f"recipient {item.buyer_siren} is not reachable on e-invoicing "
                           "(pre-flight)")
    return item.upload_sha256


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
    """

    def __init__(self, client: QontoClient, outbox: Outbox, options: SendOptions,
                 progress: Progress | None) -> None:
        self.client, self.outbox, self.progress = client, outbox, progress
        self.size = max(1, min(options.batch_size, MAX_IMPORT_FILES))
        self.seen: set[str] = set()
        self.filling: list[Item] = []  # admitted, waiting for their batch to fill up
        self.batches: list[list[Item]] = []  # ready to import, in order
        self.sends: deque[Item] = deque()
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
                return

    def _start(self) -> bool:
        outbox = self.outbox
        if self.sends:
            item = self.sends.popleft()
            assert item.invoice_id is not None
            outbox.mark_sending(item.upload_sha256)
            self.running = ("send", [item], self.pool.submit(
                self._durably, self.client.send_by_einvoice, item.invoice_id))
            return True
        if self.batches:
            batch = self.batches.pop(0)
            outbox.mark_importing([i.upload_sha256 for i in batch])
            files = [UploadFile(i.file_name, outbox.blob(i), content_type_for(i.file_name))
                     for i in batch]
            self.running = ("import", batch, self.pool.submit(
                self._durably, self.client.import_client_invoices, files))
            return True
        return False

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
        outbox.mark_imported(ids)
        missing = [s for s in shas if s not in ids]
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


def refresh_status(client: QontoClient, outbox: Outbox, item: Item) -> Item:
    """Fetch an invoice's e-invoicing status and lifecycle events into the outbox."""
    assert item.invoice_id is not None
    invoice = client.get_client_invoice(item.invoice_id)
    events = [e.as_dict() for e in invoice.lifecycle_events]
    if invoice.einvoicing_status != item.einvoicing_status or tuple(events) != item.events:
        outbox.record_status(item.upload_sha256, invoice.einvoicing_status, events)
    refreshed = outbox.get(item.upload_sha256)
    assert refreshed is not None
    return refreshed


def _wait(client: QontoClient, outbox: Outbox, wanted: set[str], options: SendOptions,
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
