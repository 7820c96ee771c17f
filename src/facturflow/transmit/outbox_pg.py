"""The outbox on PostgreSQL (`--state postgresql://...`): the schema and the guarantees of the
SQLite outbox (facturflow.transmit.outbox), shared by several senders, on one machine or many.

What changes with several writers:

- Every transition is its own transaction, committed before the method returns, so before the
  network step that follows it; `deferred()` and `sync()` exist for the pipeline's sake and
  change nothing here (a commit is cheap on a server, and there is no file to fsync).
- An invoice is taken to its next step (import, send) by one sender at a time: `claim()` marks
  it with the sender's id and a lease (`UPDATE ... WHERE ... IN (SELECT ... FOR UPDATE SKIP
  LOCKED)`, so two senders claiming at once never wait for each other nor take the same row).
  A live sender renews its leases from a background thread; a dead one's run out after
  `lease_seconds` and another sender takes the invoice over, repeating the step that was in
  flight (Qonto's import and send are idempotent, as after a kill with SQLite). Lease times
  are the server's clock, so machines' clocks need not agree.
- A transition is written only by the sender holding the invoice's claim (or when nobody holds
  a live one): a sender whose lease was taken over cannot overwrite its successor's record.
- Stored uploads live in the database (table `blobs`, bytea), in the same transaction as their
  row: a sender on another machine finds the exact bytes to upload, which a local folder could
  not give it.
- The schema is versioned (table `schema_version`); migrations are applied in order, in one
  transaction, under an advisory lock, so that senders starting together do not race.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TransmitError
from .errors import ConfigError
from .outbox import (
    CheckReport,
    Item,
    SourceRecord,
    State,
    _utf8,
    rebuilt_upload,
    sha256,
)
from .outbox.common import OutboxCommon

if TYPE_CHECKING:
    import psycopg

INSTALL_HINT = "pip install 'facturflow[postgresql]'"
DEFAULT_LEASE_SECONDS = 60.0
URL_SCHEMES = ("postgresql://", "postgres://")
# pg_advisory_xact_lock key of the schema migrations (any constant; "ffoutbox" in ASCII)
_MIGRATION_LOCK = 0x66666F7574626F78
# pg_advisory_xact_lock key of `outbox migrate`'s copy ("ffmigrat"): two copies at once would
# insert the same rows, and the second would fail on a unique key instead of finding them there
_COPY_LOCK = 0x66666D6967726174

_ITEM_COLUMNS = tuple(f.name for f in fields(Item))
_COLUMNS_SQL = ", ".join(f"i.{c}" for c in _ITEM_COLUMNS)
_NOW = "extract(epoch from clock_timestamp())"  # the server's clock, shared by every sender
# Who may write an invoice's transition: its claimant, or anyone when no live claim holds it.
_FREE = f"(i.claimed_by IS NULL OR i.claimed_by = %(me)s OR i.lease_until < {_NOW})"

# Versioned migrations, applied in order: (version, what it does, SQL). Never edit one that
# was released; add the next.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "outbox tables (items, sources, history, blobs)", """
CREATE TABLE items (
    org              TEXT NOT NULL,
    upload_sha256    TEXT NOT NULL,
    source_sha256    TEXT NOT NULL,
    source_path      TEXT NOT NULL,
    file_name        TEXT NOT NULL,
    upload_format    TEXT NOT NULL,
    size             BIGINT NOT NULL,
    invoice_number   TEXT,
    buyer_siren      TEXT,
    state            TEXT NOT NULL,
    invoice_id       TEXT,
    einvoicing_status TEXT,
    events           TEXT NOT NULL DEFAULT '[]',
    error            TEXT,
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    sent_at          DOUBLE PRECISION,
    content          TEXT,
    claimed_by       TEXT,
    lease_until      DOUBLE PRECISION,
    PRIMARY KEY (org, upload_sha256)
);
CREATE TABLE sources (
    org            TEXT NOT NULL,
    source_sha256  TEXT NOT NULL,
    upload_format  TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    upload_sha256  TEXT,
    reason         TEXT,
    source_path    TEXT NOT NULL,
    updated_at     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (org, source_sha256, upload_format)
);
CREATE TABLE history (
    id            BIGSERIAL PRIMARY KEY,
    org           TEXT NOT NULL,
    upload_sha256 TEXT NOT NULL,
    at            DOUBLE PRECISION NOT NULL,
    state         TEXT NOT NULL,
    detail        TEXT
);
CREATE TABLE blobs (
    upload_sha256 TEXT PRIMARY KEY,
    data          BYTEA NOT NULL
);
CREATE INDEX items_invoice ON items (invoice_id);
CREATE INDEX items_number ON items (org, invoice_number);
CREATE INDEX items_claimed ON items (claimed_by);
CREATE INDEX history_item ON history (org, upload_sha256, id);
"""),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class DatabaseConfigError(ConfigError):
    """The outbox database cannot be used as configured: psycopg missing, a malformed URL,
    wrong credentials, no such database or role (exit 3, CONFIG)."""


class DatabaseUnavailableError(TransmitError):
    """The outbox database cannot be reached or failed (server down, connection lost, a schema
    newer than this facturflow) (exit 6, STATE)."""


class ClaimLostError(DatabaseUnavailableError):
    """This sender's claim on an invoice was taken over by another sender (it stopped longer
    than its lease: SIGSTOP, a suspended machine): it must not make the invoice's next request
    (exit 6, STATE; the other sender goes on with it)."""


class MigrateConflictError(TransmitError):
    """`outbox migrate` found rows in the database that differ from the SQLite outbox's."""


def is_database_url(state: object) -> bool:
    return isinstance(state, str) and state.startswith(URL_SCHEMES)


def not_a_database_url(state: object) -> str | None:
    """For a state written as a URL of another scheme (a typo: `postgresq://`, `pgsql://`),
    which would otherwise be taken for a folder (a local outbox, not the shared one, in a
    folder named after the password): what to say, naming only the scheme; else None."""
    if not isinstance(state, str) or is_database_url(state):
        return None
    found = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://", state)
    if found is None:
        return None
    return (f"'{found.group(1)}://...' is not a PostgreSQL URL: write postgresql://"
            "USER@HOST[:PORT]/DB (or postgres://), or a folder")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise DatabaseConfigError(
            f"--state postgresql://... needs psycopg (PostgreSQL support): {INSTALL_HINT}",
            variable="FACTURFLOW_STATE") from None
    return psycopg


def describe(url: str) -> str:
    """`database DB on HOST:PORT as USER`, for messages: never the password."""
    psycopg = _psycopg()
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "database (malformed URL)"
    host = str(info.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(info.get("port") or os.environ.get("PGPORT") or "5432")
    where = f"database {info.get('dbname') or info.get('user') or '?'} on {host}:{port}"
    # A password with an unescaped '@' ends up in the host: redacted like any message.
    return _redact(where + (f" as {info['user']}" if info.get("user") else ""), url)


def _secrets(url: str) -> list[str]:
    """What of `url` may be its password, as parsed or as written: the parsed password; the
    user part's password as written (up to the last '@'), percent-decoded too, and its pieces
    around an unescaped '@', '/' or ':'; every `password=` query value. The driver's messages
    quote a URL it cannot parse, or the token it choked on, which can be any of them."""
    from urllib.parse import unquote

    found: set[str] = set()
    with contextlib.suppress(Exception):
        parsed = _psycopg().conninfo.conninfo_to_dict(url).get("password")
        if parsed:
            found.add(str(parsed))
    rest = url.split("://", 1)[1] if "://" in url else url
    before_query = rest.split("?", 1)[0]
    if "@" in before_query:
        written = before_query.rsplit("@", 1)[0].partition(":")[2]
        if written:
            found |= {written, unquote(written)}
            found |= {piece for piece in re.split(r"[@/:]", written) if len(piece) >= 3}
    for value in re.findall(r"[?&]password=([^&#\s\"']*)", url):
        if value:
            found |= {value, unquote(value)}
    return sorted(found, key=len, reverse=True)  # the longest first: no piece left behind


def _redact(text: str, url: str) -> str:
    for secret in _secrets(url):
        text = text.replace(secret, "[REDACTED]")
    return re.sub(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", r"\1[REDACTED]@", text)


def _clean(text: str, url: str) -> str:
    """One line of a psycopg message, with any password of `url` removed."""
    return _redact(" ".join(str(text).split()), url)


_CONFIG_PATTERNS = ("password authentication failed", "no password supplied",
                    "does not exist", "no pg_hba.conf entry", "invalid connection option",
                    "invalid uri", "invalid integer value", "missing \"=\"", "authentication",
                    "permission denied", "invalid percent-encoded", "invalid port")


def database_error(exc: BaseException, url: str) -> TransmitError:
    """One clear error for a failure of the outbox database: CONFIG for what the settings can
    fix (credentials, names), STATE for the rest (down, unreachable, connection lost)."""
    if isinstance(exc, TransmitError):
        return exc
    where = describe(url)
    text = _clean(str(exc), url)
    if any(p in text.lower() for p in _CONFIG_PATTERNS):
        return DatabaseConfigError(f"cannot use the outbox {where}: {text}",
                                   variable="FACTURFLOW_STATE")
    return DatabaseUnavailableError(f"the outbox {where} cannot be used: {text}", source=where)


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[dict[str, Any]]:
    """A connection to the outbox database (dict rows), the schema migrated; errors mapped."""
    psycopg = _psycopg()
    from psycopg.rows import dict_row

    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
        extra = {} if "connect_timeout" in info else {"connect_timeout": 10}
        conn = psycopg.connect(url, autocommit=autocommit, row_factory=dict_row,
                               application_name="facturflow", **extra)
    except psycopg.Error as exc:
        raise database_error(exc, url) from None
    try:
        migrate_schema(conn, url)
    except BaseException:
        conn.close()
        raise
    return conn  # type: ignore[no-any-return]


def migrate_schema(conn: psycopg.Connection[Any], url: str) -> int:
    """Bring the schema to SCHEMA_VERSION: the missing migrations in order, in one transaction
    under an advisory lock (a second process starting now waits, then finds them applied)."""
    psycopg = _psycopg()
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY "
                         "KEY, description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
            row = conn.execute("SELECT max(version) AS v FROM schema_version").fetchone()
            value = (row["v"] if isinstance(row, Mapping) else row[0]) if row else None
            current = int(value or 0)
            if current > SCHEMA_VERSION:
                raise DatabaseUnavailableError(
                    f"the outbox {describe(url)} has schema version {current}, newer than this "
                    f"facturflow knows ({SCHEMA_VERSION}): upgrade facturflow",
                    source=describe(url))
            for version, description, sql in MIGRATIONS:
                if version > current:
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_version VALUES (%s, %s, %s)",
                                 (version, description, time.time()))
            return max(current, SCHEMA_VERSION)
    except psycopg.Error as exc:
        raise database_error(exc, url) from None


class PgOutbox(OutboxCommon):
    """The outbox in a PostgreSQL database, for one organisation; see the module docstring.

    `lock` is accepted for the SQLite Outbox's signature: several writers are the point here,
    and claims (`claim`) keep them apart invoice by invoice."""

    _PARAM = "%s"
    _HISTORY_ORDER = "id"

    def __init__(self, url: str, org: str, *, lock: bool = True,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
        self.url, self.org, self.lease_seconds = url, org, float(lease_seconds)
        self.shared = True  # several senders write it: the send stage claims each step
        self.where = describe(url)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()
        self._psycopg = _psycopg()
        self.db = connect(url)
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        # The invoices this sender claimed and has not released: their transitions are written
        # only while the claim is still its own (fencing), never after another took it over.
        self._held: set[str] = set()

    # -- plumbing -------------------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        with self._lock, contextlib.suppress(self._psycopg.Error):
            if not self.db.closed:  # give back what this sender still holds, for the others
                self.db.execute("UPDATE items SET claimed_by = NULL, lease_until = NULL "
                                "WHERE claimed_by = %s", (self.owner,))
        self.db.close()

    def __enter__(self) -> PgOutbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[PgOutbox]:
        """Nothing to defer: every transition is committed when it is recorded."""
        yield self

    def sync(self) -> None:
        """Every transition is already committed (and durable on the server)."""

    @contextlib.contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with self._lock, self._errors(), self.db.transaction():
            yield self.db

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._psycopg.Error as exc:
            raise database_error(exc, self.url) from None

    def _rows(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[dict[str, Any]]:
        with self._lock, self._errors():
            return self.db.execute(sql, params).fetchall()

    def _log(self, db: psycopg.Connection[Any], upload_sha: str, state: str,
             detail: str | None) -> None:
        db.execute("INSERT INTO history (org, upload_sha256, at, state, detail) "
                   "VALUES (%s, %s, %s, %s, %s)", (self.org, upload_sha, time.time(), state,
                                                   detail))

    @staticmethod
    def _item(row: Mapping[str, Any]) -> Item:
        data = {c: row[c] for c in _ITEM_COLUMNS}
        data["events"] = tuple(json.loads(data["events"] or "[]"))
        return Item(**data)

    # -- sources --------------------------------------------------------------------------------
    def lookup_source(self, source_sha: str, upload_format: str) -> SourceRecord | None:
        rows = self._rows("SELECT verdict, upload_sha256, reason FROM sources WHERE org=%s AND "
                          "source_sha256=%s AND upload_format=%s",
                          (self.org, source_sha, upload_format))
        if not rows:
            return None
        return SourceRecord(rows[0]["verdict"], rows[0]["upload_sha256"], rows[0]["reason"])

    def record_rejected(self, source_sha: str, upload_format: str, path: str, reason: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO sources VALUES (%s, %s, %s, 'rejected', NULL, %s, %s, %s) "
                       "ON CONFLICT (org, source_sha256, upload_format) DO UPDATE SET "
                       "verdict='rejected', upload_sha256=NULL, reason=EXCLUDED.reason, "
                       "source_path=EXCLUDED.source_path, updated_at=EXCLUDED.updated_at",
                       (self.org, source_sha, upload_format, reason, path, time.time()))

    def record_validated(self, *, source_sha: str, source_path: str, upload_format: str,
                         file_name: str, upload: bytes, invoice_number: str | None,
                         buyer_siren: str | None,
                         content: Mapping[str, str] | None = None) -> Item:
        """Store the upload and its row (state `validated`) in one transaction. When another
        sender recorded the same source first (a conversion's bytes may differ from one run to
        the next), its upload stands and is returned: one source, one upload, whoever wins."""
        upload_sha = sha256(upload)
        now = time.time()
        with self._tx() as db:
            first = db.execute(
                "INSERT INTO sources VALUES (%s, %s, %s, 'ok', %s, NULL, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                (self.org, source_sha, upload_format, upload_sha, source_path, now)).fetchone()
            if first is None:  # recorded before (waits for a concurrent insert to commit)
                row = db.execute("SELECT verdict, upload_sha256 FROM sources WHERE org=%s AND "
                                 "source_sha256=%s AND upload_format=%s FOR UPDATE",
                                 (self.org, source_sha, upload_format)).fetchone()
                theirs = row["upload_sha256"] if row and row["verdict"] == "ok" else None
                if theirs and theirs != upload_sha and db.execute(
                        "SELECT 1 FROM items WHERE org=%s AND upload_sha256=%s",
                        (self.org, theirs)).fetchone():
                    upload_sha = theirs
                else:
                    db.execute("UPDATE sources SET verdict='ok', upload_sha256=%s, reason=NULL, "
                               "source_path=%s, updated_at=%s WHERE org=%s AND source_sha256=%s "
                               "AND upload_format=%s", (upload_sha, source_path, now, self.org,
                                                        source_sha, upload_format))
            if upload_sha == sha256(upload):
                self._store(db, upload_sha, upload)
                inserted = db.execute(
                    "INSERT INTO items (org, upload_sha256, source_sha256, source_path, "
                    "file_name, upload_format, size, invoice_number, buyer_siren, state, "
                    "created_at, updated_at, content) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, 'validated', %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                    (self.org, upload_sha, source_sha, source_path, file_name, upload_format,
                     len(upload), invoice_number, buyer_siren, now, now,
                     json.dumps(dict(content), sort_keys=True) if content else None),
                ).fetchone()
                if inserted is not None:
                    self._log(db, upload_sha, "validated", source_path)
        item = self.get(upload_sha)
        assert item is not None
        return item

    @staticmethod
    def _store(db: psycopg.Connection[Any], upload_sha: str, data: bytes) -> None:
        # A row whose bytes no longer match their hash is replaced; a good one is kept.
        db.execute("INSERT INTO blobs VALUES (%s, %s) ON CONFLICT (upload_sha256) DO UPDATE "
                   "SET data = EXCLUDED.data "
                   "WHERE encode(sha256(blobs.data), 'hex') <> blobs.upload_sha256",
                   (upload_sha, data))

    # -- stored uploads -------------------------------------------------------------------------
    def _blob_bytes(self, upload_sha: str) -> bytes | None:
        rows = self._rows("SELECT data FROM blobs WHERE upload_sha256=%s", (upload_sha,))
        return bytes(rows[0]["data"]) if rows else None

    def blob(self, item: Item) -> bytes:
        """The stored upload; a missing or corrupt one is rebuilt from an unchanged source."""
        data = self._blob_bytes(item.upload_sha256)
        if data is not None and sha256(data) == item.upload_sha256:
            return data
        return self.rebuild_blob(item)

    def blob_problem(self, item: Item) -> str | None:
        data = self._blob_bytes(item.upload_sha256)
        if data is None:
            return "missing"
        return None if sha256(data) == item.upload_sha256 else "corrupt"

    def rebuild_blob(self, item: Item) -> bytes:
        problem = self.blob_problem(item) or "unreadable"
        upload = rebuilt_upload(item, problem)
        with self._tx() as db:
            self._store(db, item.upload_sha256, upload)
            self._log(db, item.upload_sha256, "rebuilt", f"stored upload was {problem}")
        return upload

    # -- items ----------------------------------------------------------------------------------
    def get(self, upload_sha: str) -> Item | None:
        rows = self._rows(f"SELECT {_COLUMNS_SQL} FROM items i WHERE org=%s AND "
                          "upload_sha256=%s", (self.org, upload_sha))
        return self._item(rows[0]) if rows else None

    def items(self) -> list[Item]:
        rows = self._rows(f"SELECT {_COLUMNS_SQL} FROM items i WHERE org=%s "
                          "ORDER BY created_at, source_path", (self.org,))
        return [self._item(r) for r in rows]

    def find(self, ref: str) -> list[Item]:
        """Items matching a source path, an invoice id, an invoice number or a sha256 prefix."""
        if not _utf8(ref) or "\x00" in ref:
            return []
        resolved = str(Path(ref).resolve()) if ref else ref
        resolved = resolved if _utf8(resolved) else ref
        rows = self._rows(
            f"SELECT {_COLUMNS_SQL} FROM items i WHERE org=%(org)s AND (source_path=%(ref)s OR "
            "source_path=%(resolved)s OR invoice_id=%(ref)s OR invoice_number=%(ref)s OR "
            "(length(%(ref)s) >= 8 AND starts_with(upload_sha256, %(ref)s))) "
            "ORDER BY created_at, source_path",
            {"org": self.org, "ref": ref, "resolved": resolved})
        return [self._item(r) for r in rows]

    def by_number(self, invoice_number: str) -> list[Item]:
        rows = self._rows(f"SELECT {_COLUMNS_SQL} FROM items i WHERE org=%s AND "
                          "invoice_number=%s ORDER BY created_at", (self.org, invoice_number))
        return [self._item(r) for r in rows]

    # -- claims ---------------------------------------------------------------------------------
    def claim(self, upload_shas: Sequence[str]) -> dict[str, Item]:
        """Claim the invoices not sent yet that no other live sender holds, for `lease_seconds`
        (renewed while this instance lives): {sha: item as it is now} of those claimed. An
        invoice another sender holds is left out, without waiting for it (SKIP LOCKED)."""
        if not upload_shas:
            return {}
        params = {"me": self.owner, "org": self.org, "shas": list(upload_shas),
                  "lease": self.lease_seconds}
        with self._tx() as db:
            rows = db.execute(
                f"WITH picked AS (SELECT i.upload_sha256, i.claimed_by AS was FROM items i "
                f"WHERE i.org=%(org)s AND i.upload_sha256 = ANY(%(shas)s) AND i.state <> 'sent' "
                f"AND {_FREE} FOR UPDATE SKIP LOCKED) "
                f"UPDATE items i SET claimed_by=%(me)s, lease_until={_NOW} + %(lease)s "
                f"FROM picked p WHERE i.org=%(org)s AND i.upload_sha256=p.upload_sha256 "
                f"RETURNING {_COLUMNS_SQL}, p.was", params).fetchall()
            for row in rows:
                if row["was"] and row["was"] != self.owner:
                    self._log(db, row["upload_sha256"], "claimed",
                              f"taken over from {row['was']} (its lease ran out)")
        self._held.update(r["upload_sha256"] for r in rows)
        self._start_heartbeat()
        return {r["upload_sha256"]: self._item(r) for r in rows}

    def _start_heartbeat(self) -> None:
        if self._beat is None and not self._stop.is_set():
            self._beat = threading.Thread(target=self._renew, name="facturflow-lease",
                                          daemon=True)
            self._beat.start()

    def _renew(self) -> None:
        """Extend this sender's leases every third of a lease, on a connection of its own (a
        long request or a slow commit on the main one must not let them run out)."""
        conn: Any = None
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if conn is None or conn.closed:
                    conn = self._psycopg.connect(self.url, autocommit=True,
                                                 application_name="facturflow-lease",
                                                 connect_timeout=10)
                conn.execute(f"UPDATE items SET lease_until = {_NOW} + %s WHERE claimed_by = %s",
                             (self.lease_seconds, self.owner))
            except self._psycopg.Error:
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None  # the server is away: try again at the next beat
        if conn is not None:
            conn.close()

    # -- transitions ----------------------------------------------------------------------------
    def _set(self, upload_shas: Sequence[str], state: State, detail: str | None = None,
             **columns: Any) -> None:
        now = time.time()
        release = state in ("sent", "failed")  # the step is over: another sender may go on
        assignments = "".join(f", {k}=%({k})s" for k in columns)
        if release:
            assignments += ", claimed_by=NULL, lease_until=NULL"
        with self._tx() as db:
            for upload_sha in upload_shas:
                held = upload_sha in self._held
                done = db.execute(
                    f"UPDATE items i SET state=%(state)s, updated_at=%(now)s{assignments}"
                    f"{self._renewal(held, release)} WHERE org=%(org)s AND "
                    f"upload_sha256=%(sha)s AND {self._fence(held)} RETURNING 1",
                    {"state": state, "now": now, "org": self.org, "sha": upload_sha,
                     "me": self.owner, "lease": self.lease_seconds, **columns}).fetchone()
                if done is None and held:
                    self._lost(upload_sha, before_request=state in ("importing", "sending"))
                elif done is not None:
                    self._log(db, upload_sha, state, detail)
                    if release:
                        self._held.discard(upload_sha)

    @staticmethod
    def _fence(held: bool) -> str:
        """Who may write an invoice's transition: the claimant alone once this sender claimed
        it (a lease that ran out while nobody took it over is still its own); else, as for a
        step taken without a claim (outbox retry), anyone while no live claim holds it."""
        return "i.claimed_by = %(me)s" if held else _FREE

    @staticmethod
    def _renewal(held: bool, release: bool) -> str:
        # The step is renewed with the claim, in the same row lock: a sender that takes over
        # an expired lease either comes first (and this write is refused) or finds it live.
        return f", lease_until={_NOW} + %(lease)s" if held and not release else ""

    def _lost(self, upload_sha: str, *, before_request: bool) -> None:
        """This sender's claim on the invoice was taken over: its record stays the other
        sender's (and stays fenced off until this sender claims it anew). Before a request
        (import, send) this sender must not make: an error."""
        if before_request:
            raise ClaimLostError(
                f"another sender took over invoice {upload_sha[:12]} in the outbox "
                f"{self.where}: this one was stopped longer than its lease "
                f"({self.lease_seconds:g} s) and stops here without sending it",
                source=self.where)

    def mark_imported(self, invoice_ids: dict[str, str]) -> None:
        """Record Qonto's invoice id of each upload (one transaction for the whole batch)."""
        now = time.time()
        with self._tx() as db:
            for upload_sha, invoice_id in invoice_ids.items():
                held = upload_sha in self._held
                done = db.execute(
                    f"UPDATE items i SET state='imported', invoice_id=%(id)s, error=NULL, "
                    f"updated_at=%(now)s{self._renewal(held, False)} WHERE org=%(org)s AND "
                    f"upload_sha256=%(sha)s AND {self._fence(held)} RETURNING 1",
                    {"id": invoice_id, "now": now, "org": self.org, "sha": upload_sha,
                     "me": self.owner, "lease": self.lease_seconds}).fetchone()
                if done is not None:
                    self._log(db, upload_sha, "imported", invoice_id)
                elif held:
                    self._lost(upload_sha, before_request=False)

    def mark_adopted(self, upload_sha: str, invoice_id: str, *, sent: bool) -> None:
        """Take over an invoice Qonto already has under this number (see Outbox.mark_adopted)."""
        now = time.time()
        release = ", claimed_by=NULL, lease_until=NULL" if sent else ""
        held = upload_sha in self._held
        with self._tx() as db:
            done = db.execute(
                f"UPDATE items i SET state=%(state)s, invoice_id=%(id)s, error=NULL, "
                f"updated_at=%(now)s, sent_at=%(sent_at)s{release}"
                f"{self._renewal(held, sent)} WHERE org=%(org)s AND "
                f"upload_sha256=%(sha)s AND {self._fence(held)} RETURNING 1",
                {"state": "sent" if sent else "imported", "id": invoice_id, "now": now,
                 "sent_at": now if sent else None, "org": self.org, "sha": upload_sha,
                 "me": self.owner, "lease": self.lease_seconds}).fetchone()
            if done is not None:
                self._log(db, upload_sha, "sent" if sent else "imported",
                          f"adopted {invoice_id} (found at Qonto by invoice number)")
            elif held:
                self._lost(upload_sha, before_request=False)
            if sent and done is not None:
                self._held.discard(upload_sha)

    def forget(self, upload_sha: str) -> None:
        """Remove an item, its history, the source verdict pointing at it, and its stored
        upload unless another organisation's item shares it (one transaction)."""
        with self._tx() as db:
            for table in ("items", "sources", "history"):
                db.execute(f"DELETE FROM {table} WHERE org=%s AND upload_sha256=%s",
                           (self.org, upload_sha))
            db.execute("DELETE FROM blobs b WHERE upload_sha256=%s AND NOT EXISTS "
                       "(SELECT 1 FROM items i WHERE i.upload_sha256 = b.upload_sha256)",
                       (upload_sha,))


def organisations(url: str) -> list[str]:
    """The organisations the outbox database holds items for."""
    conn = connect(url)
    try:
        with contextlib.closing(conn):
            return [r["org"] for r in conn.execute("SELECT DISTINCT org FROM items ORDER BY org")]
    except _psycopg().Error as exc:
        raise database_error(exc, url) from None


def check_database(url: str) -> CheckReport:
    """`outbox check` of a database: its schema, each item's stored upload."""
    report = CheckReport()
    conn = connect(url)
    try:
        with contextlib.closing(conn):
            rows = conn.execute(
                "SELECT i.upload_sha256, i.state, i.invoice_number, i.invoice_id, i.source_path, "
                "b.upload_sha256 IS NOT NULL AS stored, "
                "encode(sha256(b.data), 'hex') = i.upload_sha256 AS intact "
                "FROM items i LEFT JOIN blobs b ON b.upload_sha256 = i.upload_sha256 "
                "ORDER BY i.created_at").fetchall()
            orphans = conn.execute(
                "SELECT count(*) AS n FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM items i "
                "WHERE i.upload_sha256 = b.upload_sha256)").fetchone()
            report.orphan_blobs = int(orphans["n"]) if orphans else 0
    except _psycopg().Error as exc:
        raise database_error(exc, url) from None
    report.database = "ok"
    report.items = len(rows)
    for row in rows:
        if row["state"] == "sent":
            report.sent.append(f"{row['invoice_number'] or '?'} ({row['invoice_id']})")
        if row["stored"] and row["intact"]:
            continue
        problem = "corrupt" if row["stored"] else "missing"
        report.blob_problems.append(
            f"{row['source_path']}: stored upload {row['upload_sha256'][:12]} is {problem}"
            + ("" if row["invoice_id"] is None else
               " (not needed any more: Qonto has the invoice)"))
    if report.blob_problems:
        report.advice.append("a missing or corrupt stored upload is rebuilt from its source "
                             "by `facturflow outbox retry REF` (or the next send) when the "
                             "source is unchanged; otherwise `facturflow outbox forget REF`")
    return report


__all__ = ["DEFAULT_LEASE_SECONDS", "INSTALL_HINT", "MIGRATIONS", "SCHEMA_VERSION",
           "DatabaseConfigError", "DatabaseUnavailableError", "MigrateConflictError",
           "PgOutbox", "check_database", "connect", "database_error",
           "describe", "is_database_url", "organisations"]
