"""The state folder: its errors, the lost-outbox refusal, its organisations, `check_state`."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import TransmitError
from ..errors import OutboxLostError
from .records import sha256


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


def _refuse_non_folder(state_dir: str | os.PathLike[str]) -> None:
    """A state folder that is a file is unusable, not an empty outbox (status and check said
    "no invoice" and "ok" for a mistyped --state naming a file)."""
    folder = Path(state_dir)
    if folder.exists() and not folder.is_dir():
        raise StateFolderError(f"the state folder {folder} is not a folder")
    if not folder.exists() and any(p.exists() and not p.is_dir() for p in folder.parents):
        raise StateFolderError(f"the state folder {folder} is under a file")
