"""`Outbox`: the SQLite outbox of one state folder: durable transitions, one row per upload."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .blobs import _BlobWriter, _fsync_path, _store_blob, rebuilt_upload
from .folder import OutboxBusyError, refuse_lost_outbox, state_error
from .records import Item, SourceRecord, State, sha256
from .schema import _create_schema, _utf8


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
        _create_schema(self.db)
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
