"""The outbox's SQLite schema, its migration, and which text SQLite can store."""

from __future__ import annotations

import sqlite3

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


def _create_schema(db: sqlite3.Connection) -> None:
    """Create the tables (if absent) and add the columns that older outboxes lack."""
    db.executescript(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(items)")}
    if "content" not in columns:  # an outbox from before the content column
        db.execute("ALTER TABLE items ADD COLUMN content TEXT")


def _utf8(text: str) -> bool:
    """Whether SQLite can take this text (a file name of undecodable bytes carries surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
