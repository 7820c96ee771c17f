"""Upload and send: imports in batches and sends, one request at a time in a worker thread."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    QontoError,
    ValidationRejectedError,
)
from ..outbox import Item
from ..outbox_pg import ClaimLostError
from ..qonto import (
    MAX_IMPORT_FILE_BYTES,
    MAX_IMPORT_FILES,
    MAX_IMPORT_TOTAL_BYTES,
    ImportedInvoice,
    QontoClient,
    UploadFile,
    content_type_for,
)
from ..store import (
    OutboxStore,
)
from .lookup import _QontoNumbers
from .options import Progress, R, SendOptions, T


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
