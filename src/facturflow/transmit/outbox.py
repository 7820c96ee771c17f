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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import TransmitError
from ..lifecycle import Verdict, classify
from .errors import OutboxLostError

State = Literal["validated", "importing", "imported", "sending", "sent", "failed"]
STATES: tuple[State, ...] = ("validated", "importing", "imported", "sending", "sent", "failed")
# Qonto einvoicing_status values final on their own. `approved` is not among them: a later
# event (207 En litige...) may reopen it; see facturflow.lifecycle for what is final.
FINAL_EINVOICING = frozenset({"declined", "not_delivered", "submission_failed"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    org              TEXT NOT NULL,
    upload_sha256    TEXT NOT NULL,
    source_sha256    TEXT NOT NULL,
    source_path      TEXT NOT NULL,
    file_name        TEXT NOT NULL,
    upload_format    TEXT NOT NULL,
    size             INTEGER NOT NULL,
    invoice_number   TEXT,
    buyer_siren      TEXT,
    state            TEXT NOT NULL,
    invoice_id       TEXT,
    einvoicing_status TEXT,
    events           TEXT NOT NULL DEFAULT '[]',
    error            TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    sent_at          REAL,
    PRIMARY KEY (org, upload_sha256)
);
CREATE TABLE IF NOT EXISTS sources (
    org            TEXT NOT NULL,
    source_sha256  TEXT NOT NULL,
    upload_format  TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    upload_sha256  TEXT,
    reason         TEXT,
    source_path    TEXT NOT NULL,
    updated_at     REAL NOT NULL,
    PRIMARY KEY (org, source_sha256, upload_format)
);
CREATE TABLE IF NOT EXISTS history (
    org           TEXT NOT NULL,
    upload_sha256 TEXT NOT NULL,
    at            REAL NOT NULL,
    state         TEXT NOT NULL,
    detail        TEXT
);
CREATE INDEX IF NOT EXISTS items_invoice ON items (invoice_id);
CREATE INDEX IF NOT EXISTS items_number ON items (org, invoice_number);
"""


class OutboxBusyError(TransmitError):
    """Another process holds this state folder's outbox."""


class OutboxCorruptError(OutboxLostError):
    """The outbox database is not a readable SQLite database (truncated, overwritten): the
    record of what was sent is lost too, until `facturflow outbox check` salvages it."""


class StateFolderError(TransmitError):
    """The state folder cannot be written: read-only, full disk, no permission."""


class StoredUploadError(TransmitError):
    """A stored upload is missing or corrupt and cannot be rebuilt from its source."""


def state_error(exc: BaseException, folder: str | os.PathLike[str]) -> TransmitError:
    """One clear error for a failure of the state folder or its outbox database."""
    import errno

    if isinstance(exc, TransmitError):
        return exc
    where = str(folder)
    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "full" in text:
            return StateFolderError(f"disk full: cannot write the outbox in {where}",
                                    source=where)
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return StateFolderError(f"cannot write the state folder {where} (read-only or not "
                                    "permitted)", source=where)
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return OutboxCorruptError(
                f"the outbox {Path(where) / 'outbox.sqlite3'} is corrupt or truncated ({exc}); "
                f"`facturflow outbox check --state {where}` says what can be recovered",
                source=where)
        return StateFolderError(f"the outbox in {where} cannot be used: {exc}", source=where)
    if isinstance(exc, OSError):
        name = os.fsdecode(exc.filename) if exc.filename else where
        name = "" if name in (where, str(Path(where).resolve())) else f"{name}: "
        reasons = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                   errno.EPERM: "not permitted", errno.ENOTDIR: "not a folder",
                   errno.EEXIST: "not a folder"}
        reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
        return StateFolderError(f"cannot write the state folder {where}: {name}{reason}",
                                source=where)
    return TransmitError(str(exc), source=where)


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


class Outbox:
    """The outbox of one state folder, for one organisation. Holds an exclusive lock while open."""

    def __init__(self, state_dir: str | os.PathLike[str], org: str, *, lock: bool = True) -> None:
        """Open (creating) the outbox; `lock=False` is for readers such as `status`."""
        self.state_dir = Path(state_dir)
        refuse_lost_outbox(self.state_dir)
        self.org = org
        self.blobs = self.state_dir / "blobs"
        self.shared = False  # one writer at a time (the folder's lock)
        self._lock_fd: int | None = None
        try:
            self._connect(lock)
        except (OSError, sqlite3.Error) as exc:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            raise state_error(exc, self.state_dir) from exc

    def _connect(self, lock: bool) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        if lock:
            fd = os.open(self.state_dir / "outbox.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutboxBusyError(
                    f"another facturflow process is using {self.state_dir}",
                    source=str(self.state_dir),
                ) from None
            self._lock_fd = fd
        # One connection, shared by the send stage's threads under `_lock` (see sync()).
        self.db = sqlite3.connect(self.state_dir / "outbox.sqlite3", isolation_level=None,
                                  check_same_thread=False)
        try:
            self._configure()
        except BaseException:
            self.db.close()
            raise

    def _configure(self) -> None:
        self._lock = threading.RLock()
        self.db.row_factory = sqlite3.Row
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        # In WAL mode, NORMAL: a commit writes the WAL without fsync; _make_durable() then
        # fsyncs the WAL after every commit (outside the lock in sync()): FULL's durability,
        # without making the other thread wait for the disk (see the module docstring). Where WAL is
        # not available (some network file systems), FULL syncs within each commit.
        self._wal: Path | None = None
        if str(mode).lower() == "wal":
            self._wal = self.state_dir / "outbox.sqlite3-wal"
            self.db.execute("PRAGMA synchronous=NORMAL")
        else:
            self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(items)")}
        if "content" not in columns:  # an outbox from before the content column
            self.db.execute("ALTER TABLE items ADD COLUMN content TEXT")
        self._committed = 0  # commits made...
        self._durable = 0  # ...and how many of them are known to be on disk
        self._deferred = 0  # depth of deferred() blocks
        self._open = False  # a deferred transaction is open
        self._blob_jobs: dict[str, Future[None]] = {}  # uploads being stored (deferred mode)
        self._writer: _BlobWriter | None = None

    def close(self) -> None:
        try:
            self.sync()
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self.db.close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield from self._tx_locked()

    def _tx_locked(self) -> Iterator[sqlite3.Connection]:
        if self._deferred:
            if not self._open:
                self.db.execute("BEGIN IMMEDIATE")
                self._open = True
            self.db.execute("SAVEPOINT tx")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO tx")
                self.db.execute("RELEASE tx")
                raise
            self.db.execute("RELEASE tx")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self._committed += 1
        self._make_durable()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[Outbox]:
        """Record transitions without committing each one; `sync()` (and leaving) commits.

        The caller must call `sync()` before any network step that depends on what was
        recorded; see the module docstring.
        """
        self._deferred += 1
        try:
            yield self
        finally:
            self._deferred -= 1
            if not self._deferred:
                self.sync()

    def sync(self) -> None:
        """Make every transition recorded so far durable: stored uploads first, then rows.

        Any thread may call it (the send stage calls it from the thread that makes the request
        that follows); the lock keeps every other use of the connection out meanwhile, so no
        row is committed before its stored upload, and no step is committed half-done.
        """
        # Wait for the uploads being stored without the lock (the other thread goes on), then,
        # under it, for the few queued meanwhile: a thread storing uploads faster than the
        # disk takes them cannot keep the sync (and the request behind it) waiting for ever.
        futures.wait(list(self._blob_jobs.values()))
        with self._lock:
            jobs = list(self._blob_jobs.values())
            self._blob_jobs = {}
            try:
                futures.wait(jobs)  # all done before a failure rolls back what they stored for
                for job in jobs:  # each one stored its upload durably, folder entry too
                    job.result()
            except BaseException:
                if self._open:  # rows must not outlive an upload that was not stored
                    self._open = False
                    self.db.execute("ROLLBACK")
                raise
            if self._open:
                self._open = False
                self.db.execute("COMMIT")
                self._committed += 1
        self._make_durable()

    def _make_durable(self) -> None:
        """fsync the WAL if a commit made so far may not be on disk yet (what FULL does within
        COMMIT). fsync flushes the file whoever wrote it, and commits only append to the WAL
        (a checkpoint syncs it first), so once this returns every earlier commit is durable."""
        target = self._committed
        if self._durable >= target or self._wal is None:
            return
        with contextlib.suppress(FileNotFoundError):  # no WAL: everything is in the database
            _fsync_path(self._wal)
        with self._lock:
            self._durable = max(self._durable, target)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def _log(self, db: sqlite3.Connection, upload_sha: str, state: str, detail: str | None) -> None:
        db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?)",
                   (self.org, upload_sha, time.time(), state, detail))

    # -- sources ------------------------------------------------------------------------------
    def lookup_source(self, source_sha: str, upload_format: str) -> SourceRecord | None:
        rows = self._rows(
            "SELECT verdict, upload_sha256, reason FROM sources WHERE org=? AND source_sha256=? "
            "AND upload_format=?", (self.org, source_sha, upload_format))
        if not rows:
            return None
        row = rows[0]
        return SourceRecord(row["verdict"], row["upload_sha256"], row["reason"])

    def record_rejected(self, source_sha: str, upload_format: str, path: str, reason: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, 'rejected', NULL, ?, ?, ?)",
                       (self.org, source_sha, upload_format, reason, path, time.time()))

    def record_validated(
        self,
        *,
        source_sha: str,
        source_path: str,
        upload_format: str,
        file_name: str,
        upload: bytes,
        invoice_number: str | None,
        buyer_siren: str | None,
        content: Mapping[str, str] | None = None,
    ) -> Item:
        """Store the upload's bytes durably, then commit its row (state `validated`)."""
        upload_sha = sha256(upload)
        now = time.time()
        with self._lock:  # no sync() between the upload's storing and its row
            self._write_blob(upload_sha, upload)
            with self._tx() as db:
                db.execute(
                    "INSERT OR IGNORE INTO items (org, upload_sha256, source_sha256, source_path, "
                    "file_name, upload_format, size, invoice_number, buyer_siren, state, "
                    "created_at, updated_at, content) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'validated', ?, ?, ?)",
                    (self.org, upload_sha, source_sha, source_path, file_name, upload_format,
                     len(upload), invoice_number, buyer_siren, now, now,
                     json.dumps(dict(content), sort_keys=True) if content else None),
                )
                db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?, 'ok', ?, NULL, ?, ?)",
                           (self.org, source_sha, upload_format, upload_sha, source_path, now))
                self._log(db, upload_sha, "validated", source_path)
        item = self.get(upload_sha)
        assert item is not None
        return item

    def _write_blob(self, upload_sha: str, data: bytes) -> None:
        if not self._deferred:
            _store_blob(self.blobs, upload_sha, data)
            return
        if upload_sha not in self._blob_jobs:
            if self._writer is None:
                self._writer = _BlobWriter(self.blobs)
            self._blob_jobs[upload_sha] = self._writer.submit(upload_sha, data)

    def blob(self, item: Item) -> bytes:
        """The stored upload; a missing or corrupt one is rebuilt from an unchanged source."""
        job = self._blob_jobs.get(item.upload_sha256)
        if job is not None:
            job.result()
        if self.blob_problem(item) is None:
            return (self.blobs / item.upload_sha256).read_bytes()
        return self.rebuild_blob(item)

    # -- items --------------------------------------------------------------------------------
    def _item(self, row: sqlite3.Row) -> Item:
        data = dict(row)
        data["events"] = tuple(json.loads(data["events"] or "[]"))
        return Item(**data)

    def get(self, upload_sha: str) -> Item | None:
        rows = self._rows("SELECT * FROM items WHERE org=? AND upload_sha256=?",
                          (self.org, upload_sha))
        return self._item(rows[0]) if rows else None

    def items(self) -> list[Item]:
        rows = self._rows("SELECT * FROM items WHERE org=? ORDER BY created_at, source_path",
                          (self.org,))
        return [self._item(r) for r in rows]

    def find(self, ref: str) -> list[Item]:
        """Items matching a source path, an invoice id, an invoice number or a sha256 prefix."""
        if not _utf8(ref):  # a non-UTF-8 file name: never recorded (send refuses it)
            return []
        resolved = str(Path(ref).resolve()) if ref else ref
        resolved = resolved if _utf8(resolved) else ref
        rows = self._rows(
            "SELECT * FROM items WHERE org=? AND (source_path=? OR source_path=? OR invoice_id=? "
            "OR invoice_number=? OR (length(?) >= 8 AND upload_sha256 LIKE ? || '%'))",
            (self.org, ref, resolved, ref, ref, ref, ref),
        )
        return [self._item(r) for r in rows]

    def by_number(self, invoice_number: str) -> list[Item]:
        """Items carrying this invoice number (BT-1), whatever bytes they came from."""
        rows = self._rows("SELECT * FROM items WHERE org=? AND invoice_number=?",
                          (self.org, invoice_number))
        return [self._item(r) for r in rows]

    def pending_import(self) -> list[Item]:
        return [i for i in self.items() if i.invoice_id is None and i.state != "sent"]

    def pending_send(self) -> list[Item]:
        return [i for i in self.items() if i.invoice_id is not None and i.state != "sent"]

    def _set(self, upload_shas: Sequence[str], state: State, detail: str | None = None,
             **columns: Any) -> None:
        now = time.time()
        assignments = ", ".join(f"{k}=?" for k in columns)
        sql = f"UPDATE items SET state=?, updated_at=?{', ' if columns else ''}{assignments} " \
              "WHERE org=? AND upload_sha256=?"
        with self._tx() as db:
            for upload_sha in upload_shas:
                db.execute(sql, (state, now, *columns.values(), self.org, upload_sha))
                self._log(db, upload_sha, state, detail)

    def mark_importing(self, upload_shas: Sequence[str]) -> None:
        self._set(upload_shas, "importing", error=None)

    def mark_imported(self, invoice_ids: dict[str, str]) -> None:
        """Record Qonto's invoice id of each upload (one transaction for the whole batch)."""
        now = time.time()
        with self._tx() as db:
            for upload_sha, invoice_id in invoice_ids.items():
                db.execute("UPDATE items SET state='imported', invoice_id=?, error=NULL, "
                           "updated_at=? WHERE org=? AND upload_sha256=?",
                           (invoice_id, now, self.org, upload_sha))
                self._log(db, upload_sha, "imported", invoice_id)

    def mark_adopted(self, upload_sha: str, invoice_id: str, *, sent: bool) -> None:
        """Take over an invoice Qonto already has under this number (imported by a run whose
        record is lost): its id, and `sent` when Qonto says it was submitted already."""
        now = time.time()
        with self._tx() as db:
            db.execute("UPDATE items SET state=?, invoice_id=?, error=NULL, updated_at=?, "
                       "sent_at=? WHERE org=? AND upload_sha256=?",
                       ("sent" if sent else "imported", invoice_id, now, now if sent else None,
                        self.org, upload_sha))
            self._log(db, upload_sha, "sent" if sent else "imported",
                      f"adopted {invoice_id} (found at Qonto by invoice number)")

    def mark_sending(self, upload_sha: str) -> None:
        self._set([upload_sha], "sending", error=None)

    def mark_sent(self, upload_sha: str) -> None:
        self._set([upload_sha], "sent", sent_at=time.time(), error=None)

    def mark_failed(self, upload_shas: Sequence[str], reason: str) -> None:
        self._set(upload_shas, "failed", reason, error=reason)

    def record_status(self, upload_sha: str, einvoicing_status: str | None,
                      events: Sequence[dict[str, Any]]) -> None:
        with self._tx() as db:
            db.execute("UPDATE items SET einvoicing_status=?, events=?, updated_at=? "
                       "WHERE org=? AND upload_sha256=?",
                       (einvoicing_status, json.dumps(list(events)), time.time(), self.org,
                        upload_sha))
            self._log(db, upload_sha, f"status:{einvoicing_status}", None)

    def history(self, upload_sha: str) -> list[tuple[float, str, str | None]]:
        rows = self._rows("SELECT at, state, detail FROM history WHERE org=? AND "
                          "upload_sha256=? ORDER BY rowid", (self.org, upload_sha))
        return [(r["at"], r["state"], r["detail"]) for r in rows]


    # -- maintenance (facturflow outbox) --------------------------------------------------------
    def blob_problem(self, item: Item) -> str | None:
        """None when the stored upload is there and intact, else "missing" or "corrupt"."""
        path = self.blobs / item.upload_sha256
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return "missing"
        return None if sha256(data) == item.upload_sha256 else "corrupt"

    def rebuild_blob(self, item: Item) -> bytes:
        """Store the upload again from its source, when the source is unchanged and yields the
        very same bytes (the upload's hash is the invoice's key: other bytes would be another
        upload). Raises StoredUploadError saying why not, and how to forget the entry."""
        problem = self.blob_problem(item) or "unreadable"
        upload = rebuilt_upload(item, problem)
        with self._lock:
            _store_blob(self.blobs, item.upload_sha256, upload)
            with self._tx() as db:
                self._log(db, item.upload_sha256, "rebuilt", f"stored upload was {problem}")
        return upload

    def claim(self, upload_shas: Sequence[str]) -> dict[str, Item]:
        """The items this instance may take to their next step, as they are now. Here, every
        one: the folder's lock already makes this process the outbox's only writer."""
        found = {sha: self.get(sha) for sha in upload_shas}
        return {sha: item for sha, item in found.items() if item is not None}

    def forget(self, upload_sha: str) -> None:
        """Remove an item, its history and the source verdict pointing at it (durably first),
        then its stored upload unless another organisation's item shares it."""
        with self._tx() as db:
            db.execute("DELETE FROM items WHERE org=? AND upload_sha256=?", (self.org, upload_sha))
            db.execute("DELETE FROM sources WHERE org=? AND upload_sha256=?",
                       (self.org, upload_sha))
            db.execute("DELETE FROM history WHERE org=? AND upload_sha256=?",
                       (self.org, upload_sha))
        if not self._rows("SELECT 1 FROM items WHERE upload_sha256=? LIMIT 1", (upload_sha,)):
            with contextlib.suppress(FileNotFoundError):
                (self.blobs / upload_sha).unlink()

    def reset_failed(self, upload_sha: str) -> None:
        """Put a failed item back where the next send takes it up: `imported` when Qonto gave
        it an id, else `validated` (the error stays in its history)."""
        item = self.get(upload_sha)
        if item is None or item.state != "failed":
            return
        state: State = "imported" if item.invoice_id else "validated"
        self._set([upload_sha], state, "retry", error=None)


def rebuilt_upload(item: Item, problem: str) -> bytes:
    """The upload of `item` made again from its source, when the source is unchanged and yields
    the very same bytes (the upload's hash is the invoice's key: other bytes would be another
    upload); StoredUploadError saying why not, and how to forget the entry."""
    from .pipeline import Rejected, prepare  # the pipeline imports this module

    where = f"the stored upload of {item.source_path} ({item.upload_sha256[:12]}) is {problem}"
    forget = (f"; if Qonto does not have it, forget the entry with `facturflow outbox forget "
              f"{item.upload_sha256[:12]}` and send the file again")
    try:
        data = Path(item.source_path).read_bytes()
    except OSError as exc:
        raise StoredUploadError(f"{where} and the source cannot be read "
                                f"({exc.strerror or exc}){forget}",
                                source=item.source_path) from None
    if sha256(data) != item.source_sha256:
        raise StoredUploadError(f"{where} and the source has changed since{forget}",
                                source=item.source_path)
    upload, _, rules = item.upload_format.partition(":")
    try:
        prepared = prepare(item.source_path, data, "xml" if upload == "xml" else "facturx",
                           None if rules in ("", "default") else rules)
    except Rejected as exc:
        raise StoredUploadError(f"{where} and the source no longer passes: {exc.reason}"
                                f"{forget}", source=item.source_path) from None
    if sha256(prepared.upload) != item.upload_sha256:
        raise StoredUploadError(f"{where}; the unchanged source converts to other bytes "
                                f"now{forget}", source=item.source_path)
    return prepared.upload


def _store_blob(folder: Path, upload_sha: str, data: bytes) -> None:
    """Write `folder/upload_sha` durably, its folder entry included."""
    _write_blob_file(folder, upload_sha, data)
    _fsync_path(folder)


def _write_blob_file(folder: Path, upload_sha: str, data: bytes) -> None:
    """Write and fsync `folder/upload_sha` unless it is there (not its folder entry: a file
    found there may be one a killed run renamed in but never made durable)."""
    target = folder / upload_sha
    if target.exists() and sha256(target.read_bytes()) == upload_sha:
        return
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".blob.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:  # a full disk must not leave a half-written temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _BlobWriter:
    """Stores uploads durably in a background thread. Uploads queued while it works go as one
    group: each file fsynced, then their folder once (one fsync fewer per upload when the disk
    is the bottleneck). A job is done only when its folder entry is durable too."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.jobs: queue.SimpleQueue[tuple[str, bytes, Future[None]] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="facturflow-outbox", daemon=True)
        self.thread.start()

    def submit(self, upload_sha: str, data: bytes) -> Future[None]:
        future: Future[None] = Future()
        self.jobs.put((upload_sha, data, future))
        return future

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def _run(self) -> None:
        running = True
        while running:
            group = [self.jobs.get()]
            with contextlib.suppress(queue.Empty):
                while group[-1] is not None:
                    group.append(self.jobs.get_nowait())
            if group[-1] is None:
                running = False
            stored: list[Future[None]] = []
            for job in group:
                if job is None:
                    continue
                upload_sha, data, future = job
                try:
                    _write_blob_file(self.folder, upload_sha, data)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    stored.append(future)
            try:
                if stored:
                    _fsync_path(self.folder)
            except BaseException as exc:
                for future in stored:
                    future.set_exception(exc)
            else:
                for future in stored:
                    future.set_result(None)


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder: so that the entries it holds are on disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def refuse_lost_outbox(state_dir: Path) -> None:
    """Raise OutboxLostError when `state_dir` holds stored uploads but no usable outbox.

    Stored uploads mean runs happened here; without their outbox nothing says which invoices
    went out, and using the folder as new would be the state loss that sends invoices twice.
    """
    blobs = state_dir / "blobs"
    try:
        stored = sum(1 for p in blobs.iterdir() if not p.name.startswith("."))
    except OSError:
        return  # no blobs/ (a new folder), or not a folder: nothing was stored here
    if not stored:
        return
    path = state_dir / "outbox.sqlite3"
    recover = (f"To recover: put back {path.name} from a backup; or, if it is lost for good, "
               f"move {blobs} and what is left of {path.name} aside (or use another state "
               "folder): facturflow then asks Qonto which invoice numbers it already has and "
               "imports none of them again.")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise OutboxLostError(
            f"state folder {state_dir} holds {stored} stored upload(s) but its outbox "
            f"({path.name}) is gone: the record of what was sent is lost, so facturflow will not "
            f"use this folder. {recover}", source=str(path)) from None
    if size == 0:
        raise OutboxLostError(
            f"state folder {state_dir} holds {stored} stored upload(s) but its outbox "
            f"({path.name}) is empty: the record of what was sent is lost, so facturflow will "
            f"not use this folder. {recover}", source=str(path))
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            db.execute("SELECT count(*) FROM items").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return  # in use by another process: readable, just not now (its opener will wait)
        raise OutboxCorruptError(
            f"state folder {state_dir} holds {stored} stored upload(s) but its outbox "
            f"({path.name}) cannot be read, corrupt or truncated ({exc}): the record of what "
            f"was sent is lost, so facturflow will not use this folder. `facturflow outbox "
            f"check --state {state_dir}` says what can be recovered. {recover}",
            source=str(path)) from exc


def organisations(state_dir: str | os.PathLike[str]) -> list[str]:
    """The organisations an outbox folder holds items for (read-only, no lock)."""
    _refuse_non_folder(state_dir)
    path = Path(state_dir) / "outbox.sqlite3"
    if not path.exists() or path.stat().st_size == 0:
        # An emptied outbox is a lost one when uploads were stored (as `send` says), else new:
        # not "no such table: items", nor a dry run that refuses what the real send does.
        refuse_lost_outbox(Path(state_dir))
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [r[0] for r in db.execute("SELECT DISTINCT org FROM items ORDER BY org")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise state_error(exc, state_dir) from exc


@dataclass
class CheckReport:
    """What `check_state` found; `ok` when nothing needs attention."""

    # "ok", "absent", "empty" (0 bytes), "lost (absent/empty)" beside stored uploads, or what
    # SQLite's quick_check said
    database: str = "absent"
    items: int = 0
    sent: list[str] = field(default_factory=list)  # "number (invoice id)" of sent items found
    blob_problems: list[str] = field(default_factory=list)  # one line per bad stored upload
    orphan_blobs: int = 0  # stored uploads no item refers to
    temporary_files: int = 0  # leftovers of an interrupted write (removed by check)
    advice: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.database in ("ok", "absent", "empty") and not self.blob_problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "database": self.database, "items": self.items,
                "sent": self.sent, "blob_problems": self.blob_problems,
                "orphan_blobs": self.orphan_blobs, "temporary_files": self.temporary_files,
                "advice": self.advice}


def check_state(state_dir: str | os.PathLike[str]) -> CheckReport:
    """Check a state folder without trusting it: the database (SQLite's quick_check, read-only),
    each item's stored upload, leftovers. On a damaged database, salvage what rows can be
    read, so that the invoices already sent are known before anyone starts over."""
    folder = Path(state_dir)
    _refuse_non_folder(folder)
    report = CheckReport()
    blobs = folder / "blobs"
    for leftover in blobs.glob(".blob.*") if blobs.is_dir() else ():
        with contextlib.suppress(OSError):
            leftover.unlink()
            report.temporary_files += 1
    path = folder / "outbox.sqlite3"
    referenced: set[str] = set()
    if path.exists() and path.stat().st_size == 0:
        report.database = "empty"  # what a deleted-then-touched or emptied outbox looks like
    if path.exists() and report.database != "empty":
        rows: list[sqlite3.Row] = []
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            report.database = str(exc)
        else:
            db.row_factory = sqlite3.Row
            try:
                verdict = [r[0] for r in db.execute("PRAGMA quick_check")]
                report.database = "ok" if verdict == ["ok"] else "; ".join(verdict[:3])
            except sqlite3.Error as exc:
                report.database = str(exc)
            rows = _salvage(db)
            db.close()
        report.items = len(rows)
        for row in rows:
            sha = str(row["upload_sha256"])
            referenced.add(sha)
            if row["state"] == "sent":
                report.sent.append(f"{row['invoice_number'] or '?'} ({row['invoice_id']})")
            blob = blobs / sha
            if not blob.exists():
                problem = "missing"
            elif sha256(blob.read_bytes()) != sha:
                problem = "corrupt"
            else:
                continue
            needed = row["invoice_id"] is None
            report.blob_problems.append(
                f"{row['source_path']}: stored upload {sha[:12]} is {problem}"
                + ("" if needed else " (not needed any more: Qonto has the invoice)"))
        if report.database != "ok":
            report.advice.append(
                f"the outbox database is damaged: move {path} aside (with its -wal and -shm "
                f"files), then send again only what was not sent: {len(report.sent)} invoice(s) "
                "could be read as sent (listed); Qonto recognises the very same bytes, but a "
                "Factur-X PDF made anew from XML may differ, so check those with Qonto first")
        if any("is missing" in p or "is corrupt" in p for p in report.blob_problems):
            report.advice.append("a missing or corrupt stored upload is rebuilt from its source "
                                 "by `facturflow outbox retry REF` (or the next send) when the "
                                 "source is unchanged; otherwise `facturflow outbox forget REF`")
    elif blobs.is_dir() and any(not b.name.startswith(".") for b in blobs.iterdir()):
        # Not "ok": `send` refuses this folder (OutboxLostError), check must not bless it.
        report.database = f"lost ({report.database})"
        report.advice.append(f"stored uploads without an outbox in {blobs}: the outbox was "
                             "deleted, emptied or moved; restore it, or move the blobs folder "
                             "aside (the next send then asks Qonto which invoice numbers it "
                             "already has)")
    if blobs.is_dir():
        report.orphan_blobs = sum(1 for b in blobs.iterdir()
                                  if not b.name.startswith(".") and b.name not in referenced)
    return report


def _salvage(db: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every item row that can still be read (row by row on a damaged database)."""
    try:
        return db.execute("SELECT * FROM items ORDER BY rowid").fetchall()
    except sqlite3.Error:
        pass
    rows: list[sqlite3.Row] = []
    try:
        ids = [r[0] for r in db.execute("SELECT rowid FROM items")]
    except sqlite3.Error:
        return rows
    for rowid in ids:
        with contextlib.suppress(sqlite3.Error):
            rows.extend(db.execute("SELECT * FROM items WHERE rowid=?", (rowid,)).fetchall())
    return rows


__all__ = ["FINAL_EINVOICING", "STATES", "CheckReport", "Item", "Outbox", "OutboxBusyError",
           "OutboxCorruptError", "OutboxLostError", "SourceRecord", "StateFolderError",
           "StoredUploadError", "check_state", "organisations", "refuse_lost_outbox", "sha256",
           "state_error"]


def _refuse_non_folder(state_dir: str | os.PathLike[str]) -> None:
    """A state folder that is a file is unusable, not an empty outbox (status and check said
    "no invoice" and "ok" for a mistyped --state naming a file)."""
    folder = Path(state_dir)
    if folder.exists() and not folder.is_dir():
        raise StateFolderError(f"the state folder {folder} is not a folder")
    if not folder.exists() and any(p.exists() and not p.is_dir() for p in folder.parents):
        raise StateFolderError(f"the state folder {folder} is under a file")


def _utf8(text: str) -> bool:
    """Whether SQLite can take this text (a file name of undecodable bytes carries surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
