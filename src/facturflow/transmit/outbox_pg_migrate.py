"""`facturflow outbox migrate --to URL`: an existing SQLite outbox copied into PostgreSQL, in one
transaction, idempotent, refusing rows that differ."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .outbox import sha256
from .outbox_pg import (
    _COLUMNS_SQL,
    _COPY_LOCK,
    _ITEM_COLUMNS,
    MigrateConflictError,
    _psycopg,
    connect,
    database_error,
)

if TYPE_CHECKING:
    import psycopg


@dataclass
class MigrateReport:
    """What `migrate_from_sqlite` copied, and what was there already."""

    items: int = 0
    sources: int = 0
    history: int = 0
    blobs: int = 0
    items_present: int = 0
    sources_present: int = 0
    missing_blobs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"copied": {"items": self.items, "sources": self.sources,
                           "history": self.history, "stored_uploads": self.blobs},
                "already_there": {"items": self.items_present,
                                  "sources": self.sources_present},
                "missing_stored_uploads": self.missing_blobs}


_SOURCE_COLUMNS = ("org", "source_sha256", "upload_format", "verdict", "upload_sha256",
                   "reason", "source_path", "updated_at")


def migrate_from_sqlite(folder: str | os.PathLike[str], url: str) -> MigrateReport:
    """Copy the SQLite outbox of `folder` (items, source verdicts, history, stored uploads) into
    the database at `url`, in one transaction. Rows already there and equal are skipped (run it
    again: nothing changes); a row there that differs refuses the whole copy
    (MigrateConflictError). The folder is locked meanwhile, so no send changes it."""
    import sqlite3

    from .outbox import Outbox, refuse_lost_outbox

    source = Path(folder)
    path = source / "outbox.sqlite3"
    refuse_lost_outbox(source)
    if not path.is_file() or path.stat().st_size == 0:
        raise MigrateConflictError(f"no SQLite outbox to migrate in {source} ({path.name} "
                                   "is missing or empty)", source=str(source))
    report = MigrateReport()
    with Outbox(source, "", lock=True) as local:  # the lock: no send meanwhile
        with local._lock:
            db = local.db
            items = [dict(r) for r in db.execute("SELECT * FROM items ORDER BY rowid")]
            sources = [dict(r) for r in db.execute("SELECT * FROM sources ORDER BY rowid")]
            history = [dict(r) for r in db.execute(
                "SELECT * FROM history ORDER BY rowid")]
        conn = connect(url)
        try:
            with contextlib.closing(conn), conn.transaction():
                _copy(conn, local.blobs, items, sources, history, report)
        except (_psycopg().Error, sqlite3.Error) as exc:
            raise database_error(exc, url) from None
    return report


def _copy(conn: psycopg.Connection[dict[str, Any]], blobs: Path, items: list[dict[str, Any]],
          sources: list[dict[str, Any]], history: list[dict[str, Any]],
          report: MigrateReport) -> None:
    conflicts: list[str] = []
    new: set[tuple[str, str]] = set()
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_COPY_LOCK,))  # one copy at a time
    for item in items:
        key = (item["org"], item["upload_sha256"])
        row = conn.execute(f"SELECT {_COLUMNS_SQL} FROM items i WHERE org=%s AND "
                           "upload_sha256=%s", key).fetchone()
        wanted = {c: item.get(c) for c in _ITEM_COLUMNS}
        if row is None:
            cols = ", ".join(_ITEM_COLUMNS)
            conn.execute(f"INSERT INTO items ({cols}) VALUES "
                         f"({', '.join(['%s'] * len(_ITEM_COLUMNS))})",
                         tuple(wanted.values()))
            new.add(key)
            report.items += 1
        elif dict(row) == wanted:
            report.items_present += 1
        else:
            differs = [c for c in _ITEM_COLUMNS if row[c] != wanted[c]]
            conflicts.append(f"{item['source_path']} ({item['invoice_number'] or '?'}, "
                             f"{item['upload_sha256'][:12]}): {', '.join(differs)} differ")
    for src in sources:
        key3 = (src["org"], src["source_sha256"], src["upload_format"])
        row = conn.execute("SELECT * FROM sources WHERE org=%s AND source_sha256=%s AND "
                           "upload_format=%s", key3).fetchone()
        wanted = {c: src.get(c) for c in _SOURCE_COLUMNS}
        if row is None:
            conn.execute("INSERT INTO sources VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                         tuple(wanted.values()))
            report.sources += 1
        elif dict(row) == wanted:
            report.sources_present += 1
        else:
            conflicts.append(f"source verdict of {src['source_path']}: "
                             f"{row['verdict']} there, {src['verdict']} here")
    if conflicts:
        raise MigrateConflictError(
            f"{len(conflicts)} row(s) of the SQLite outbox differ from those already in the "
            f"database, nothing copied: " + "; ".join(conflicts[:5])
            + ("; ..." if len(conflicts) > 5 else ""))
    for entry in history:  # only for items copied now: a second run adds nothing
        if (entry["org"], entry["upload_sha256"]) in new:
            conn.execute("INSERT INTO history (org, upload_sha256, at, state, detail) "
                         "VALUES (%s, %s, %s, %s, %s)",
                         (entry["org"], entry["upload_sha256"], entry["at"], entry["state"],
                          entry["detail"]))
            report.history += 1
    for sha in sorted({item["upload_sha256"] for item in items}):
        try:
            data = (blobs / sha).read_bytes()
        except OSError:
            data = b""
        if sha256(data) != sha:
            report.missing_blobs.append(sha)
            continue  # rebuilt from its source when needed, as with the SQLite outbox
        done = conn.execute("INSERT INTO blobs VALUES (%s, %s) ON CONFLICT DO NOTHING "
                            "RETURNING 1", (sha, data)).fetchone()
        report.blobs += done is not None
