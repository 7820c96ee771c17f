"""A local Qonto PA emulator: a real HTTP server on loopback speaking the contract of API.md.

    with facturflow.sandbox() as sb:            # ephemeral port on 127.0.0.1
        client = QontoClient(base_url=sb.base_url, api_key=sb.api_key)
        ...
        sb.counters()                           # send_by_einvoice calls and submissions

State (organisations, invoices, files, tokens, registrations, idempotency cache) lives in a
folder and survives a restart. Fault injection (5xx, 429, dropped connections, stalls) is seeded
so that a failing test replays. Test hooks are Python methods and, for out-of-process users,
`/_sandbox/...` routes.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import math
import os
import random
import re
import secrets
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import SandboxBusyError
from .fields import read_invoice_fields
from .qonto import check_api_key

MIB = 1024 * 1024
FAULT_KINDS = ("500", "502", "503", "429", "drop", "drop_after", "stall")
# Bounds of the test hooks' inputs: beyond them a value is a mistake, not a test.
MAX_FORCED_FAULTS = 10_000
MAX_STALL_SECONDS = 600.0
MAX_CLOCK_MOVE = 100 * 365 * 24 * 3600.0  # a century
LOCK_NAME = "sandbox.lock"

# Lifecycle code -> einvoicing_status (API.md §6.2 suggested mapping; configurable).
DEFAULT_STATUS_MAP: dict[int, str] = {
    200: "submitted", 201: "submitted", 202: "submitted", 203: "submitted", 204: "submitted",
    205: "approved", 206: "approved", 209: "approved", 211: "approved", 212: "approved",
    207: "submitted", 208: "submitted", 210: "declined", 213: "submission_failed",
}

# Outcome -> lifecycle codes played after a send, with their delay in seconds. A decision
# comes a moment after 202, as it does for real: a client that stops at 202 misses it.
# "delivered" and "disputed" never reach a final outcome (facturflow.lifecycle).
OUTCOMES: dict[str, tuple[tuple[int, float], ...]] = {
    "delivered": ((200, 0.0), (201, 1.0), (202, 2.0)),
    "approved": ((200, 0.0), (201, 0.5), (202, 1.0), (205, 2.0)),
    "refused": ((200, 0.0), (201, 1.0), (202, 2.0), (210, 3.0)),
    "paid": ((200, 0.0), (201, 0.5), (202, 1.0), (212, 2.0)),  # paid without a 205 first
    "disputed": ((200, 0.0), (201, 0.5), (202, 1.0), (207, 2.0)),
    "rejected": ((200, 0.0), (213, 1.0)),
    "failed": ((200, 0.0), (213, 1.0)),  # the older name of "rejected"
    "not_delivered": ((200, 0.0), (201, 0.5)),
}
# Outcomes that end in an einvoicing_status no code gives: (status, delay after the send).
OUTCOME_STATUS: dict[str, tuple[str, float]] = {"not_delivered": ("not_delivered", 2.0)}

ALL_SCOPES = (
    "organization.read", "einvoicing.read", "client_invoice.write", "client_invoices.write",
    "client_invoices.read", "client.read", "client.write", "supplier_invoice.read",
    "supplier_invoice.write", "attachment.read", "offline_access",
)


def _finite(name: str, value: object, low: float, high: float) -> float:
    """`value` as a float when it is a real number within [low, high], else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
        value
    ) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low:g} to {high:.10g}, not {value!r}")
    return float(value)


def _count(name: str, value: object, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{name} must be a whole number from 0 to {high}, not {value!r}")
    return value


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of two credentials, whatever their characters.

    `hmac.compare_digest` refuses non-ASCII str (TypeError: a 500); header values arrive
    decoded as Latin-1 and form values as UTF-8, so compare their bytes instead.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def _private_open(path: Path, flags: int) -> int:
    """A file descriptor on `path`, the file created with mode 0600 (it may hold secrets)."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)  # a file left by an older version, created 0644
    return fd


@dataclass
class FaultPlan:
    """Which requests fail and how. `rate` draws from a seeded RNG; `next` forces the next ones."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    stall_seconds: float = 2.0
    retry_after: float = 0.05
    seed: int | None = None
    forced: deque[str] = field(default_factory=deque)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not self.kinds:
            raise ValueError("kinds must name at least one fault kind")
        _finite("rate", self.rate, 0.0, 1.0)
        _finite("stall_seconds", self.stall_seconds, 0.0, MAX_STALL_SECONDS)
        _finite("retry_after", self.retry_after, 0.0, MAX_STALL_SECONDS)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed,
                                                                                    int)):
            raise ValueError(f"seed must be a whole number or null, not {self.seed!r}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()  # faults served, by kind

    def draw(self) -> str | None:
        with self._lock:  # handler threads draw concurrently; keep the seeded sequence intact
            kind = None
            if self.forced:
                kind = self.forced.popleft()
            elif self.rate > 0 and self._rng.random() < self.rate:
                kind = self._rng.choice(self.kinds)
            if kind is not None:
                self.injected[kind] += 1
            return kind


@dataclass
class SandboxConfig:
    """Everything the sandbox lets a test choose; defaults follow API.md's [EMU] suggestions."""

    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None  # login:secret; generated when None
    organization_slug: str = "sandbox-org"
    staging_token: str | None = None  # when set, requests without it get a 302 (real sandbox)
    oauth_client_id: str = "sandbox-client"
    oauth_client_secret: str | None = None
    partner_id: str = "sandbox-partner"
    partner_token: str | None = None
    rate_limits: tuple[tuple[int, float], ...] = ((1000, 10.0), (10000, 600.0))
    unauthorized_limit: int = 200  # 401s per hour before throttling
    accept_xml: bool = True  # API.md §10 Q1
    sending_status: str = "enabled"
    receiving_status: str = "enabled"
    # The outcome of every send (set_outcome() overrides it per invoice number); the private
    # sandbox of the CLI takes it from $FACTURFLOW_SANDBOX_OUTCOME (default "approved").
    outcome: str = "delivered"
    lifecycle: Mapping[str, tuple[tuple[int, float], ...]] = field(
        default_factory=lambda: dict(OUTCOMES)
    )
    status_map: Mapping[int, str] = field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))
    unreachable_sirens: frozenset[str] = frozenset()
    list_includes_events: bool = False  # API.md §10 Q6
    supplier_per_page: int = 25  # API.md §10 Q16
    idempotency_ttl: float = 1800.0
    access_token_ttl: int = 3600
    max_file_bytes: int = 5 * MIB
    max_request_bytes: int = 15 * MIB
    # A request whose headers or body stall this long is dropped (a short or bogus
    # Content-Length cannot hold a handler thread); idle keep-alive connections close too.
    read_timeout: float = 30.0
    faults: FaultPlan = field(default_factory=FaultPlan)
    not_reachable_code: str = "recipient_not_reachable_on_einvoicing"
    not_activated_code: str = "einvoicing_not_activated"
    # A registration's statuses and when (seconds after its creation, on the sandbox clock,
    # which tests move with advance()) it reaches each: the Onboarding webhooks' names.
    registration_steps: tuple[tuple[str, float], ...] = (
        ("pending", 0.0), ("user_started", 60.0), ("contract_signed", 600.0),
        ("completed", 3600.0))
    # From this moment (UTC) rejecting a French e-invoice needs declined_reason_code (§5.9).
    reason_code_required_from: str = "2026-09-01T00:00:00Z"
    # Webhooks (API.md §5.13, §10 Q14): when a URL and a secret are set, every lifecycle change
    # of a sent invoice is POSTed there as a signed v1/client-invoices "updated" event (see
    # _WebhookEmitter), retried with a doubling backoff up to webhook_max_attempts times.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_signed_payload: str = "{t}.{body}"
    webhook_max_attempts: int = 10  # about 80 s of retries with the default backoff
    webhook_backoff: float = 0.2  # seconds before the first retry, doubled each time (cap 30)
    webhook_timeout: float = 5.0


class _Reply(Exception):
    """Raised inside a handler to answer at once."""

    def __init__(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _fail(status: int, code: str, detail: str, pointer: str | None = None,
          parameter: str | None = None) -> _Reply:
    entry: dict[str, Any] = {"code": code, "detail": detail}
    if pointer or parameter:
        entry["source"] = {k: v for k, v in (("pointer", pointer), ("parameter", parameter)) if v}
    return _Reply(status, {"errors": [entry]})


def _uuid7() -> str:
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 64) & 0xFFF) << 64 | (0b10 << 62) | (
        rand & ((1 << 62) - 1)
    )
    return str(uuid.UUID(int=value))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _parse_time(value: str, parameter: str) -> datetime:
    """An ISO 8601 date-time (a date alone is its midnight UTC; no zone means UTC); a 422
    naming the parameter otherwise."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise _fail(422, "invalid_parameter", f"{parameter} must be an ISO 8601 date-time",
                    parameter=parameter) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _money(value: str | None, currency: str) -> tuple[dict[str, str] | None, int | None]:
    if value is None:
        return None, None
    try:
        cents = round(float(value) * 100)
    except ValueError:
        return None, None
    return {"value": f"{cents / 100:.2f}", "currency": currency}, cents


def _sniff(data: bytes) -> str | None:
    head = data.lstrip()[:8]
    if data.startswith(b"%PDF-") or head.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "application/xml"
    return None


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes]]:
    """(field name, file name, bytes) of each part of a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match or not content_type.lower().startswith("multipart/form-data"):
        raise _fail(400, "invalid_body", "expected multipart/form-data")
    delimiter = b"\r\n--" + match.group(1).encode("latin-1")
    parts: list[tuple[str, str | None, bytes]] = []
    chunks = (b"\r\n" + body).split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise _fail(400, "invalid_body", "malformed multipart part")
        disposition = ""
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                disposition = line
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        parts.append((name.group(1) if name else "", filename.group(1) if filename else None, data))
    return parts


# ---------------------------------------------------------------------------------------------
# State


class _Tracked(dict[str, Any]):
    """A dict that records which of its keys were set, replaced or removed (for the journal).

    A value changed in place (``d["sends"].setdefault(id, {})["calls"] += 1``) is covered when it
    was reached through `setdefault`, which counts as a change; reaching it with `get` or `[]`
    and mutating it is not seen (the sandbox's own code never does that).
    """

    def __init__(self, name: str | None, changed: set[tuple[str | None, str]],
                 items: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._name = name
        self._changed = changed
        if items:
            for key, value in items.items():
                super().__setitem__(key, self._wrap(key, value))

    def _wrap(self, key: str, value: Any) -> Any:
        # Top-level dicts become tracked collections of their own.
        if self._name is None and isinstance(value, dict) and not isinstance(value, _Tracked):
            return _Tracked(key, self._changed, value)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, self._wrap(key, value))
        self._changed.add((self._name, key))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed.add((self._name, key))

    def pop(self, key: str, *default: Any) -> Any:
        self._changed.add((self._name, key))
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        self._changed.add((self._name, key))
        return self[key]

    def update(self, *args: Any, **kw: Any) -> None:
        for key, value in dict(*args, **kw).items():
            self[key] = value

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._changed.add((self._name, key))
        return key, value

    def clear(self) -> None:
        self._changed.update((self._name, key) for key in self)
        super().clear()


class _State:
    """All sandbox data, under one lock, persisted in `state.json` plus a journal.

    Each change is appended to `state.log` as one JSON line listing the entries it set or
    removed (`[collection, key, value]`, `[collection, key]`, or `[name, value]` for a top-level
    value), so a request costs the size of what it changed, not of the whole state. On load the
    journal is replayed over the snapshot; a torn last line (a killed process) is ignored. When
    the journal outgrows the snapshot, the snapshot is rewritten (atomically) and the journal
    emptied: amortised, saving stays proportional to the change. Each snapshot carries a fresh
    `_journal` tag that its journal's first line repeats, so a journal left behind by a kill
    between the two is recognised as older than the snapshot and not replayed (its entries
    could otherwise revert values changed since). No fsync: like before, the state
    survives the sandbox being killed, not the machine losing power. Upload files are kept
    beside it, named by their sha256.
    """

    MIN_COMPACT_BYTES = 1 << 20

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = folder / "files"
        # State holds the API key, OAuth secrets and tokens: private folder, private files.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.files.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / "state.json"
        self.log_path = folder / "state.log"
        self.lock = threading.RLock()
        self._changed: set[tuple[str | None, str]] = set()
        data: dict[str, Any] = {
            "org": None, "settings": {}, "client_invoices": {}, "hashes": {}, "clients": {},
            "supplier_invoices": {}, "attachments": {}, "sends": {}, "access_tokens": {},
            "refresh_tokens": {}, "codes": {}, "registrations": {}, "idempotency": {},
            "clock_offset": 0.0, "outcomes": {}, "requests": 0,
        }
        tag = None
        if self.path.exists():
            data.update(json.loads(self.path.read_text("utf-8")))
            tag = data.pop("_journal", None)
        if self.log_path.exists():
            self._replay(data, self.log_path.read_bytes(), tag)
        self.data = _Tracked(None, self._changed, data)
        self._changed.clear()
        self._log: Any = None
        self._log_bytes = 0
        self._snapshot_bytes = 0

    @staticmethod
    def _replay(data: dict[str, Any], journal: bytes, tag: str | None) -> None:
        for number, line in enumerate(journal.split(b"\n")):
            if not line.strip():
                continue
            try:
                entries = json.loads(line)
            except ValueError:
                break  # torn by a kill in the middle of a write: nothing after it was written
            if number == 0 and isinstance(entries, dict):
                if entries.get("snapshot") != tag:
                    return  # the journal of an older snapshot, which already holds its entries
                continue
            for entry in entries:
                if len(entry) == 2 and not isinstance(data.get(entry[0]), dict):
                    data[entry[0]] = entry[1]  # a top-level value (collections are dicts)
                elif len(entry) == 2:
                    collection = data.get(entry[0])
                    if isinstance(collection, dict):
                        collection.pop(entry[1], None)
                else:
                    collection = data.setdefault(entry[0], {})
                    if isinstance(collection, dict):
                        collection[entry[1]] = entry[2]
                    else:
                        data[entry[0]] = {entry[1]: entry[2]}

    def save(self) -> None:
        """Persist what changed since the last save (the caller holds `lock`)."""
        if not self._changed:
            return
        if self._log is None or self._log_bytes > max(self.MIN_COMPACT_BYTES,
                                                      self._snapshot_bytes):
            self.snapshot()
            return
        entries: list[list[Any]] = []
        for name, key in self._changed:
            if name is None:
                if isinstance(self.data.get(key), dict):
                    self.snapshot()  # a whole collection replaced (rare): no entry says that
                    return
                entries.append([key, self.data.get(key)])
            elif key in self.data[name]:
                entries.append([name, key, self.data[name][key]])
            else:
                entries.append([name, key])
        self._changed.clear()
        line = json.dumps(entries, separators=(",", ":")).encode() + b"\n"
        self._log.write(line)
        self._log.flush()
        self._log_bytes += len(line)

    def snapshot(self) -> None:
        """Rewrite `state.json` whole and start an empty journal."""
        tag = uuid.uuid4().hex
        payload = json.dumps({**self.data, "_journal": tag}, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".state.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, self.path)
        # Entries still in the old journal are also in the snapshot: emptying it loses nothing,
        # and a kill before the new journal's first line leaves a journal whose tag does not
        # match, which the next load ignores.
        if self._log is not None:
            self._log.close()
        fd = _private_open(self.log_path, os.O_WRONLY | os.O_TRUNC)
        self._log = os.fdopen(fd, "wb")  # kept open, closed by close()
        header = json.dumps({"snapshot": tag}).encode() + b"\n"
        self._log.write(header)
        self._log.flush()
        self._changed.clear()
        self._log_bytes, self._snapshot_bytes = len(header), len(payload)

    def close(self) -> None:
        with self.lock:
            if self._log is not None:
                self.save()
                self._log.close()
                self._log = None

    def put_file(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self.files / sha
        if not target.exists():
            with os.fdopen(_private_open(target, os.O_WRONLY | os.O_TRUNC), "wb") as fh:
                fh.write(data)
        return sha

    def get_file(self, sha: str) -> bytes:
        return (self.files / sha).read_bytes()


# ---------------------------------------------------------------------------------------------
# The server


def _lock_folder(folder: Path) -> int:
    """An open, exclusively locked descriptor on `folder`/sandbox.lock, or SandboxBusyError."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _private_open(folder / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            holder = os.read(fd, 64).decode("ascii").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise SandboxBusyError(
            f"another sandbox{who} is serving the state folder {folder}: stop it, or give "
            "this one another state folder", source=str(folder),
        ) from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Sandbox:
    """The emulator. A context manager: `with Sandbox() as sb:` starts it, exit stops it."""

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        config = config or SandboxConfig()
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise TypeError(f"unknown sandbox option {key!r}")
            setattr(config, key, value)
        if config.api_key is not None:
            check_api_key(config.api_key, "api_key")
        _finite("read_timeout", config.read_timeout, 0.001, 24 * 3600.0)
        self.config = config
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config.state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="facturflow-sandbox-")
            config.state_dir = Path(self._tmp.name)
        # One sandbox per state folder, taken before the state is read: a second one would
        # replay and then truncate the journal the first is appending to.
        self._lock_fd: int | None = _lock_folder(Path(config.state_dir))
        try:
            self.state = _State(Path(config.state_dir))
        except BaseException:
            self._unlock()
            raise
        d = self.state.data
        if d["org"] is None:
            d["org"] = {
                "id": str(uuid.uuid4()),
                "slug": config.organization_slug,
                "api_key": config.api_key or f"{config.organization_slug}:{secrets.token_hex(16)}",
                "client_secret": config.oauth_client_secret or secrets.token_hex(16),
                "partner_token": config.partner_token or secrets.token_hex(16),
                "signing_key": secrets.token_hex(16),
            }
        elif config.api_key:
            d["org"]["api_key"] = config.api_key
        d["settings"] = {"sending_status": config.sending_status,
                         "receiving_status": config.receiving_status, **d["settings"]}
        self.state.save()
        # (clients indexed, (field, value) -> (creation rank, client id)): buyers found in O(1)
        self._client_index: tuple[int, dict[tuple[str, Any], tuple[int, str]]] = (0, {})
        self._windows: dict[str, list[deque[float]]] = {}
        self._unauthorized: dict[str, deque[float]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self.requests = 0  # API requests received since start (test hooks excluded)
        self._webhooks = _WebhookEmitter(self)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"sandbox": self})
        try:
            self._server = ThreadingHTTPServer((self.config.host, self.config.port), handler)
        except BaseException:
            self.stop()  # the port is taken (or not ours): give the state folder back
            raise
        self._server.daemon_threads = True
        # A short poll interval: stop() waits up to one interval for the serving loop.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True, name="facturflow-sandbox")
        self._thread.start()
        self._webhooks.start()
        return self

    def stop(self) -> None:
        self._webhooks.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.state.close()
        self._unlock()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def __del__(self) -> None:
        # A sandbox dropped without stop() must not keep its folder locked for the process.
        with contextlib.suppress(Exception):
            self._unlock()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (for `facturflow sandbox`)."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what users need ----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    @property
    def api_key(self) -> str:
        return str(self.state.data["org"]["api_key"])

    @property
    def organization_id(self) -> str:
        return str(self.state.data["org"]["id"])

    @property
    def client_id(self) -> str:
        return self.config.oauth_client_id

    @property
    def client_secret(self) -> str:
        return str(self.state.data["org"]["client_secret"])

    @property
    def partner_token(self) -> str:
        return str(self.state.data["org"]["partner_token"])

    def env(self) -> dict[str, str]:
        """QONTO_* variables that point a client (or `facturflow send`) at this sandbox."""
        env = {"QONTO_BASE_URL": self.base_url, "QONTO_API_KEY": self.api_key,
               "QONTO_PARTNER_ID": self.config.partner_id,
               "QONTO_PARTNER_TOKEN": self.partner_token}
        if self.config.staging_token:
            env["QONTO_STAGING_TOKEN"] = self.config.staging_token
        return env

    def now(self) -> float:
        return time.time() + float(self.state.data["clock_offset"])

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward (lifecycle events, token and URL expiry follow it).

        `seconds` must be finite, >= 0 and at most a century: the clock never goes back.
        """
        seconds = _finite("advance", seconds, 0.0, MAX_CLOCK_MOVE)
        with self.state.lock:
            self.state.data["clock_offset"] += seconds
            self.state.save()

    def fail_next(self, count: int, kind: str) -> None:
        """Make the next `count` API requests fail with `kind` (see FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}, not {kind!r}")
        count = _count("next", count, MAX_FORCED_FAULTS)
        forced = self.config.faults.forced
        if len(forced) + count > MAX_FORCED_FAULTS:
            raise ValueError(f"at most {MAX_FORCED_FAULTS} faults may wait to be served")
        forced.extend([kind] * count)

    def set_faults(self, plan: FaultPlan) -> None:
        self.config.faults = plan

    def set_outcome(self, invoice_number: str, outcome: str) -> None:
        """Force a lifecycle outcome (a key of OUTCOMES: 'delivered', 'approved', 'refused',
        'paid', 'disputed', 'rejected', 'not_delivered') for an invoice number."""
        if outcome not in self.config.lifecycle:
            raise ValueError(outcome)
        with self.state.lock:
            self.state.data["outcomes"][invoice_number] = outcome
            self.state.save()

    def set_webhook(self, url: str | None, secret: str | None) -> None:
        """Point the lifecycle webhooks at `url`, signed with `secret` (None stops them)."""
        self.config.webhook_url, self.config.webhook_secret = url, secret
        if self._server is not None:
            self._webhooks.start()

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every delivery attempt so far: event id, invoice id, attempt, HTTP status or error."""
        return self._webhooks.log_copy()

    def set_settings(self, **settings: str) -> None:
        with self.state.lock:
            self.state.data["settings"].update(settings)
            self.state.save()

    def issue_tokens(self, scopes: tuple[str, ...] = ALL_SCOPES) -> tuple[str, str]:
        """An (access_token, refresh_token) pair, as the authorization-code flow would give."""
        with self.state.lock:
            out = self._new_tokens(list(scopes))
            self.state.save()
            return out["access_token"], out["refresh_token"]

    def authorization_code(self, scopes: tuple[str, ...] = ALL_SCOPES) -> str:
        """A code the OAuth token endpoint accepts once (as the browser step would give)."""
        code = secrets.token_urlsafe(16)
        with self.state.lock:
            self.state.data["codes"][code] = {"scopes": list(scopes), "expires": self.now() + 600}
            self.state.save()
        return code

    def counters(self) -> dict[str, dict[str, Any]]:
        """Per client invoice id: number, send_by_einvoice `calls` and network `submissions`."""
        with self.state.lock:
            out = {}
            for inv_id, inv in self.state.data["client_invoices"].items():
                sends = self.state.data["sends"].get(inv_id, {})
                out[inv_id] = {"number": inv.get("number"), "calls": sends.get("calls", 0),
                               "submissions": sends.get("submissions", 0)}
            return out

    def client_invoices(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [self._invoice_view(i, True) for i in self.state.data["client_invoices"]]

    def inject_supplier_invoice(
        self, data: bytes, file_name: str = "invoice.pdf"
    ) -> dict[str, Any]:
        """Make an incoming e-invoice appear in GET /v2/supplier_invoices."""
        fields = read_invoice_fields(data, file_name) or {}
        with self.state.lock:
            now = self.now()
            attachment_id = self._attachment(data, file_name)
            currency = fields.get("currency") or "EUR"
            total, _ = _money(fields.get("total"), currency)
            inv_id = _uuid7()
            invoice = {
                "id": inv_id, "organization_id": self.organization_id, "file_name": file_name,
                "invoice_number": fields.get("number"), "supplier_name": fields.get("seller_name"),
                "total_amount": total, "issue_date": fields.get("issue_date"),
                "due_date": fields.get("due_date"), "status": "to_review",
                "source_type": "e_invoicing", "source": "e_invoicing",
                "is_einvoice": bool(fields), "e_invoice_type": fields.get("syntax"),
                "attachment_id": attachment_id, "display_attachment_id": attachment_id,
                "attachment_category": "INVOICE", "created_at": _iso(now), "updated_at": _iso(now),
                "einvoicing_lifecycle_events": [
                    {"status_code": 202, "reason": None, "reason_message": None,
                     "timestamp": _iso(now)}
                ],
            }
            self.state.data["supplier_invoices"][inv_id] = invoice
            self.state.save()
            return dict(invoice)

    def registration_view(self, reg_id: str) -> dict[str, Any]:
        """A registration as the API shows it: its status follows the clock
        (SandboxConfig.registration_steps); once completed it has an organisation id."""
        with self.state.lock:
            stored = self.state.data["registrations"][reg_id]
            view = {k: v for k, v in stored.items() if not k.startswith("_")}
            created = float(stored.get("_created") or self.now())
            elapsed = self.now() - created
            status, since = "pending", created
            for name, delay in self.config.registration_steps:
                if elapsed >= delay:
                    status, since = name, created + delay
            view["status"] = status
            view["updated_at"] = _iso(since)
            if status == "completed":
                view["organization"] = {**view.get("organization", {}),
                                        "id": self.organization_id}
            return view

    def add_client(self, name: str, siren: str, reachable: bool = True) -> dict[str, Any]:
        """A client (GET /v2/clients) with this SIREN, reachable on the e-invoicing network
        or not (for `facturflow doctor --recipient`)."""
        with self.state.lock:
            client_id = str(uuid.uuid4())
            client = {"id": client_id, "kind": "company", "name": name, "siren": siren,
                      "vat_number": None, "e_invoicing_address": siren,
                      "e_invoicing_reachable": reachable, "currency": "EUR",
                      "created_at": _iso(self.now())}
            self.state.data["clients"][client_id] = client
            self.state.save()
            return dict(client)

    def supplier_invoices(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(i) for i in self.state.data["supplier_invoices"].values()]

    # -- internals ----------------------------------------------------------------------------
    def _new_tokens(self, scopes: list[str]) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        d = self.state.data
        d["access_tokens"][access] = {"scopes": scopes,
                                      "expires": self.now() + self.config.access_token_ttl}
        d["refresh_tokens"][refresh] = {"scopes": scopes}
        return {"access_token": access, "token_type": "bearer",
                "expires_in": self.config.access_token_ttl, "refresh_token": refresh,
                "scope": " ".join(scopes)}

    def _attachment(self, data: bytes, file_name: str) -> str:
        sha = self.state.put_file(data)
        attachment_id = str(uuid.uuid4())
        self.state.data["attachments"][attachment_id] = {
            "sha": sha, "file_name": file_name, "size": len(data),
            "content_type": _sniff(data) or "application/octet-stream",
            "created_at": _iso(self.now()),
        }
        return attachment_id

    def _events(self, inv_id: str) -> list[dict[str, Any]]:
        sends = self.state.data["sends"].get(inv_id)
        if not sends or not sends.get("submissions"):
            return []
        schedule = self.config.lifecycle.get(sends["outcome"], OUTCOMES["delivered"])
        now, start = self.now(), float(sends["sent_at"])
        events = []
        for code, delay in schedule:
            if now >= start + delay:
                reason = ("REFUS", "Refused by the recipient") if code == 210 else (
                    ("REJET", "Rejected by the platform") if code == 213 else (None, None)
                )
                events.append({"status_code": code, "reason": reason[0],
                               "reason_message": reason[1], "timestamp": _iso(start + delay)})
        return events

    def _invoice_view(self, inv_id: str, with_events: bool) -> dict[str, Any]:
        invoice = dict(self.state.data["client_invoices"][inv_id])
        events = self._events(inv_id)
        invoice["einvoicing_status"] = (
            self.config.status_map.get(events[-1]["status_code"], "submitted")
            if events else "pending"
        )
        sends = self.state.data["sends"].get(inv_id) or {}
        override = OUTCOME_STATUS.get(str(sends.get("outcome")))
        if override and sends.get("submissions") and (
            self.now() >= float(sends["sent_at"]) + override[1]
        ):
            invoice["einvoicing_status"] = override[0]
        if with_events:
            invoice["einvoicing_lifecycle_events"] = events
        invoice.pop("_sha", None)
        return invoice

    def _client_for(self, fields: Mapping[str, Any]) -> str | None:
        name, siren, vat = fields.get("buyer_name"), fields.get("buyer_siren"), fields.get(
            "buyer_vat")
        if not (name or siren or vat):
            return None
        clients = self.state.data["clients"]
        index = self._client_index
        if index[0] != len(clients):  # first use, or clients added behind our back: rebuild
            index = self._client_index = (0, {})
            for client in clients.values():
                self._index_client(client)
        # The first client (in creation order) with the same SIREN or VAT number, or without
        # either, the same name: what a scan in creation order would find.
        keys = [("siren", siren), ("vat", vat)] if siren or vat else [("name", name)]
        found = [index[1][key] for key in keys if key[1] and key in index[1]]
        if found:
            return min(found)[1]
        client_id = str(uuid.uuid4())
        reachable = bool(siren) and siren not in self.config.unreachable_sirens
        clients[client_id] = {
            "id": client_id, "kind": "company", "name": name, "siren": siren,
            "vat_number": vat, "e_invoicing_address": siren if siren else None,
            "e_invoicing_reachable": reachable, "currency": fields.get("currency") or "EUR",
            "created_at": _iso(self.now()),
        }
        self._index_client(clients[client_id])
        return client_id

    def _index_client(self, client: Mapping[str, Any]) -> None:
        count, keys = self._client_index
        for key in (("siren", client.get("siren")), ("vat", client.get("vat_number")),
                    ("name", client.get("name"))):
            if key[1]:
                keys.setdefault(key, (count, str(client["id"])))
        self._client_index = (count + 1, keys)

    def check_rate(self, ip: str) -> float | None:
        """Seconds to wait when a window is full, else None (and the request is counted)."""
        with self._count_lock:
            return self._check_rate(ip)

    def _rate_clock(self) -> float:
        # Monotonic, and moved by advance() like the rest of the sandbox's time.
        return time.monotonic() + float(self.state.data["clock_offset"])

    def _check_rate(self, ip: str) -> float | None:
        # A sliding window per (count, seconds) limit (API.md §3.4): a request is accepted
        # when fewer than `count` were accepted in the last `seconds`, so traffic that falls
        # under the limit is served again as soon as the oldest requests leave the window.
        # Refused requests are not counted: a client that waits is never locked out.
        limits = self.config.rate_limits
        now = self._rate_clock()
        windows = self._windows.get(ip)
        if windows is None or len(windows) != len(limits):
            windows = self._windows[ip] = [deque() for _ in limits]
        wait = 0.0
        for (count, window), stamps in zip(limits, windows, strict=True):
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if count > 0 and len(stamps) >= count:
                wait = max(wait, stamps[-count] + window - now)
        if wait > 0:
            return max(0.001, wait)
        for stamps in windows:
            stamps.append(now)
        return None

    def count_unauthorized(self, ip: str) -> bool:
        """Record a 401; True when this IP went over the hourly budget."""
        with self._count_lock:
            return self._count_unauthorized(ip)

    def _count_unauthorized(self, ip: str) -> bool:
        now = self._rate_clock()
        stamps = self._unauthorized.setdefault(ip, deque())
        while stamps and stamps[0] < now - 3600:
            stamps.popleft()
        stamps.append(now)
        return len(stamps) > self.config.unauthorized_limit


# Route table: method, path regex, handler name, required scopes (any of), auth kind.
_ROUTES: list[tuple[str, re.Pattern[str], str, tuple[str, ...], str]] = [
    (m, re.compile(p + r"\Z"), h, s, a)
    for m, p, h, s, a in [
        ("POST", r"/oauth2/token", "oauth_token", (), "none"),
        ("GET", r"/v2/organization", "organization", ("organization.read",), "business"),
        ("GET", r"/v2/einvoicing/settings", "settings", ("einvoicing.read",), "business"),
        ("POST", r"/v2/client_invoices/bulk", "bulk_import",
         ("client_invoice.write", "client_invoices.write"), "business"),
        ("POST", r"/v2/client_invoices/(?P<id>[^/]+)/send_by_einvoice", "send",
         ("client_invoice.write", "client_invoices.write"), "business"),
        ("GET", r"/v2/client_invoices", "list_client_invoices", ("client_invoices.read",),
         "business"),
        ("GET", r"/v2/client_invoices/(?P<id>[^/]+)", "get_client_invoice",
         ("client_invoices.read",), "business"),
        ("GET", r"/v2/clients", "list_clients", ("client.read",), "business"),
        ("GET", r"/v2/clients/(?P<id>[^/]+)", "get_client", ("client.read",), "business"),
        ("GET", r"/v2/supplier_invoices", "list_supplier_invoices", ("supplier_invoice.read",),
         "business"),
        ("GET", r"/v2/supplier_invoices/(?P<id>[^/]+)", "get_supplier_invoice",
         ("supplier_invoice.read",), "business"),
        ("POST", r"/v2/supplier_invoices/(?P<id>[^/]+)/reject", "reject_supplier_invoice",
         ("supplier_invoice.write",), "business"),
        ("POST", r"/v2/supplier_invoices/(?P<id>[^/]+)/mark_as_paid", "pay_supplier_invoice",
         ("supplier_invoice.write",), "business"),
        ("GET", r"/v2/attachments/(?P<id>[^/]+)", "get_attachment",
         ("attachment.read", "organization.read"), "business"),
        ("GET", r"/_files/(?P<id>[^/]+)", "download", (), "none"),
        ("POST", r"/register/registrations", "create_registration", (), "partner"),
        ("GET", r"/register/registrations", "list_registrations", (), "partner"),
        ("GET", r"/register/registrations/(?P<id>[^/]+)", "get_registration", (), "partner"),
        ("GET", r"/_sandbox/counters", "hook_counters", (), "hook"),
        ("POST", r"/_sandbox/clock", "hook_clock", (), "hook"),
        ("POST", r"/_sandbox/faults", "hook_faults", (), "hook"),
        ("POST", r"/_sandbox/supplier_invoices", "hook_supplier", (), "hook"),
        ("POST", r"/_sandbox/oauth/code", "hook_code", (), "hook"),
        ("POST", r"/_sandbox/settings", "hook_settings", (), "hook"),
        ("POST", r"/_sandbox/clients", "hook_client", (), "hook"),
    ]
]


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "facturflow-sandbox"

    def log_message(self, format: str, *args: Any) -> None:  # quiet; tests read counters
        return

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header follows the sandbox clock, so advance() makes a clock skew that
        # `facturflow doctor` can see.
        from email.utils import formatdate

        return formatdate(self.sandbox.now() if timestamp is None else timestamp, usegmt=True)

    def setup(self) -> None:
        super().setup()
        # Every read on the connection (request line, headers, body) waits at most this long.
        self.connection.settimeout(self.sandbox.config.read_timeout)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- plumbing -----------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        sb = self.sandbox
        trace_id = uuid.uuid4().hex
        self.trace_id = trace_id
        split = urlsplit(self.path)
        path = split.path
        self.query_all = parse_qs(split.query)
        self.query = {k: v[-1] for k, v in self.query_all.items()}
        api = not path.startswith("/_sandbox/")
        lengths = self.headers.get_all("Content-Length") or []
        if len(set(lengths)) > 1 or any(not re.fullmatch(r"[0-9]{1,18}", v.strip())
                                        for v in lengths):
            # Negative, not a number, or several that disagree: no way to find the body's end.
            self.close_connection = True
            self._send(400, {"errors": [{"code": "invalid_content_length",
                                         "detail": "Content-Length must be one whole number "
                                                   ">= 0"}]})
            return
        length = int(lengths[0]) if lengths else 0
        if length > sb.config.max_request_bytes + 64 * 1024:
            self.close_connection = True
            self._send(413, {"errors": [{"code": "request_too_large",
                                         "detail": "request body exceeds 15 MB"}]})
            return
        try:
            self.body = self.rfile.read(length) if length else b""
        except TimeoutError:
            self.body = b""  # the socket timeout (read_timeout) ended the wait
        if len(self.body) < length:
            self.close_connection = True
            self._send(400, {"errors": [{"code": "incomplete_body",
                                         "detail": f"the body ended before its Content-Length "
                                                   f"({length} bytes)"}]})
            return
        if api:
            with sb._count_lock:
                sb.requests += 1
        fault = sb.config.faults.draw() if api else None
        if fault == "stall":
            time.sleep(sb.config.faults.stall_seconds)
        elif fault == "drop":
            self.close_connection = True
            return
        elif fault in ("500", "502", "503"):
            self._send(int(fault), {"errors": [{"code": "internal_server_error",
                                                "detail": "injected fault"}]})
            return
        elif fault == "429":
            self._send(429, {"errors": [{"code": "too_many_requests", "detail": "injected"}]},
                       {"Retry-After": f"{sb.config.faults.retry_after:g}"})
            return
        try:
            status, body, headers = self._dispatch(method, path)
        except _Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        except Exception as exc:  # a sandbox bug must look like a 500, not a hang
            status, body, headers = 500, {"errors": [{"code": "internal_server_error",
                                                      "detail": type(exc).__name__}]}, {}
        if fault == "drop_after":
            # Processed, but the answer is lost: the client must cope without duplicating.
            self.close_connection = True
            return
        self._send(status, body, headers)

    def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        headers = dict(headers or {})
        if isinstance(body, bytes | bytearray):
            payload = bytes(body)
        elif body is None:
            payload = b""
        else:
            if status >= 400 and isinstance(body, dict):
                body = {**body, "trace_id": self.trace_id}
            payload = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        # Status line, headers and body leave in one write: a body written after the headers
        # would wait for the client's delayed ACK of them (Nagle), ~40 ms per answer.
        sock, buffer = self.wfile, io.BytesIO()
        self.wfile = buffer
        try:
            self.send_response(status)
            self.send_header("X-Tyk-Trace-Id", self.trace_id)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and status != 204:
                self.wfile.write(payload)
            response = buffer.getvalue()
        finally:
            self.wfile = sock
        try:
            sock.write(response)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def _dispatch(self, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        sb = self.sandbox
        allowed = [r for r in _ROUTES if r[1].match(path)]
        if not allowed:
            raise _fail(404, "not_found", f"no route for {path}")
        route = next((r for r in allowed if r[0] == method), None)
        if route is None:
            raise _fail(405, "method_not_allowed", f"{method} not allowed on {path}")
        _, pattern, handler_name, scopes, auth = route
        params = pattern.match(path).groupdict()  # type: ignore[union-attr]
        ip = self.client_address[0]
        if auth != "hook":
            if sb.config.staging_token and self.headers.get(
                "X-Qonto-Staging-Token"
            ) != sb.config.staging_token:
                # What the real sandbox does without its header: a redirect to a login page.
                return 302, b"", {"Location": "https://qonto.onelogin.com/login",
                                  "Content-Type": "text/html"}
            wait = sb.check_rate(ip)
            if wait is not None:
                raise _Reply(429, {"errors": [{"code": "too_many_requests",
                                               "detail": "rate limit exceeded"}]},
                             {"Retry-After": f"{max(1, round(wait))}"})
        credential = ""
        with sb.state.lock:
            if auth == "hook":
                # The hooks move the clock, inject faults and invoices: only for whoever holds
                # this sandbox's credentials (its API key or one of its OAuth tokens).
                self._authenticate(ip)
            elif auth == "business":
                credential, granted = self._authenticate(ip)
                if granted is not None and not any(s in granted for s in scopes):
                    raise _fail(403, "forbidden",
                                f"missing required oauth scope: {' or '.join(scopes)}")
            elif auth == "partner":
                self._authenticate_partner(ip)
            key = self.headers.get("X-Qonto-Idempotency-Key")
            cache_key = None
            if key and method != "GET" and auth != "hook":
                scope = f"{credential}|{method}|{path}|{key}"
                cache_key = hashlib.sha256(scope.encode()).hexdigest()
                cached = sb.state.data["idempotency"].get(cache_key)
                if cached and cached["expires"] > sb.now():
                    body = base64.b64decode(cached["body"])
                    return cached["status"], body, dict(cached["headers"])
            handler: Callable[..., tuple[int, Any]] = getattr(self, "r_" + handler_name)
            try:
                status, body = handler(**params)
                headers: dict[str, str] = {}
                if cache_key and 200 <= status < 300:
                    raw = b"" if body is None else json.dumps(body).encode()
                    cache = sb.state.data["idempotency"]
                    if len(cache) % 256 == 255:  # keys live 30 minutes: drop the dead ones
                        now = sb.now()
                        for dead in [k for k, v in cache.items() if v["expires"] <= now]:
                            del cache[dead]
                    cache[cache_key] = {
                        "expires": sb.now() + sb.config.idempotency_ttl, "status": status,
                        "body": base64.b64encode(raw).decode(),
                        "headers": {"Content-Type": "application/json"} if raw else {},
                    }
            finally:
                if method != "GET":  # refusals count too (send calls): persist them as well
                    sb.state.save()
            return status, body, headers

    def _authenticate(self, ip: str) -> tuple[str, list[str] | None]:
        sb = self.sandbox
        header = self.headers.get("Authorization") or ""
        d = sb.state.data
        if header.startswith("Bearer "):
            token = d["access_tokens"].get(header[7:])
            if token and token["expires"] > sb.now():
                return "bearer:" + hashlib.sha256(header.encode()).hexdigest(), token["scopes"]
        elif header and _same(header, d["org"]["api_key"]):
            return "apikey", None  # an API key reaches every endpoint this sandbox serves
        if sb.count_unauthorized(ip):
            raise _fail(429, "too_many_requests", "too many unauthorized requests")
        raise _fail(401, "unauthorized", "invalid or missing credentials")

    def _authenticate_partner(self, ip: str) -> None:
        sb = self.sandbox
        header = self.headers.get("Authorization") or ""
        expected = "Bearer " + sb.partner_token
        if not _same(header, expected) or self.headers.get(
            "Qonto-Partner-Id"
        ) != sb.config.partner_id:
            sb.count_unauthorized(ip)
            raise _fail(401, "unauthorized", "invalid partner token or Qonto-Partner-Id")

    def _json_body(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError:
            raise _fail(400, "invalid_body", "body is not JSON") from None
        if not isinstance(value, dict):
            raise _fail(400, "invalid_body", "body must be a JSON object")
        return value

    def _paginate(self, key: str, items: list[dict[str, Any]], default: int) -> tuple[int, Any]:
        try:
            page = int(self.query.get("page", "1"))
            per_page = int(self.query.get("per_page", str(default)))
        except ValueError:
            raise _fail(422, "invalid_parameter", "page and per_page must be integers",
                        parameter="page") from None
        if page < 1 or not 1 <= per_page <= 100:
            raise _fail(422, "invalid_parameter", "page >= 1 and 1 <= per_page <= 100",
                        parameter="per_page")
        total = len(items)
        pages = max(1, -(-total // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        meta = {"current_page": page, "next_page": page + 1 if page < pages else None,
                "prev_page": page - 1 if page > 1 else None, "total_pages": pages,
                "total_count": total, "per_page": per_page}
        return 200, {key: chunk, "meta": meta}

    # -- OAuth --------------------------------------------------------------------------------
    def r_oauth_token(self) -> tuple[int, Any]:
        sb, d = self.sandbox, self.sandbox.state.data
        form = {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        header = self.headers.get("Authorization") or ""
        if header[:6].lower() == "basic ":  # client_secret_basic (RFC 6749 §2.3.1)
            try:
                pair = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except ValueError:  # bad Base64 or bytes that are not UTF-8
                raise _Reply(401, {"error": "invalid_client"}) from None
            client_id, _, client_secret = pair.partition(":")
        if client_id != sb.client_id or not _same(client_secret, sb.client_secret):
            raise _Reply(401, {"error": "invalid_client"})
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = d["codes"].pop(form.get("code", ""), None)
            if not code or code["expires"] < sb.now():
                raise _Reply(400, {"error": "invalid_grant"})
            return 200, sb._new_tokens(code["scopes"])
        if grant == "refresh_token":
            # Rotation: a refresh token works once.
            old = d["refresh_tokens"].pop(form.get("refresh_token", ""), None)
            if not old:
                raise _Reply(400, {"error": "invalid_grant"})
            return 200, sb._new_tokens(old["scopes"])
        raise _Reply(400, {"error": "unsupported_grant_type"})

    # -- Business API -------------------------------------------------------------------------
    def r_organization(self) -> tuple[int, Any]:
        org = self.sandbox.state.data["org"]
        return 200, {"organization": {"id": org["id"], "slug": org["slug"],
                                      "legal_name": "Sandbox SAS", "legal_country": "FR",
                                      "bank_accounts": []}}

    def r_settings(self) -> tuple[int, Any]:
        s = self.sandbox.state.data["settings"]
        return 200, {"sending_status": s["sending_status"],
                     "receiving_status": s["receiving_status"]}

    def r_bulk_import(self) -> tuple[int, Any]:
        sb, d = self.sandbox, self.sandbox.state.data
        parts = parse_multipart(self.headers.get("Content-Type", ""), self.body)
        files = [(name, data) for field_name, name, data in parts
                 if field_name in ("client_invoices", "client_invoices[]") and name is not None]
        if not files:
            raise _fail(422, "missing_files", "field client_invoices is required",
                        pointer="/client_invoices")
        if len(files) > 5:
            raise _fail(422, "too_many_files", "at most 5 files per request",
                        pointer="/client_invoices")
        parsed = []
        for index, (name, data) in enumerate(files):  # all-or-nothing: check everything first
            pointer = f"/client_invoices/{index}"
            if len(data) > sb.config.max_file_bytes:
                raise _fail(422, "file_too_large", f"{name} exceeds 5 MB", pointer=pointer)
            kind = _sniff(data)
            if kind is None or (kind == "application/xml" and not sb.config.accept_xml):
                raise _fail(422, "unsupported_file_type",
                            f"{name}: supported formats are PDF, JPEG, PNG", pointer=pointer)
            fields = read_invoice_fields(data, name) if kind in (
                "application/pdf", "application/xml") else None
            if kind == "application/xml" and fields is None:
                raise _fail(422, "invalid_file", f"{name} is not a UBL or CII invoice",
                            pointer=pointer)
            parsed.append((name, data, fields or {}))
        out = []
        for name, data, fields in parsed:
            sha = hashlib.sha256(data).hexdigest()
            existing = d["hashes"].get(sha)
            if existing:
                out.append({"invoice_id": existing, "file_name": name})
                continue
            inv_id = _uuid7()
            currency = fields.get("currency") or "EUR"
            total, total_cents = _money(fields.get("total"), currency)
            vat, vat_cents = _money(fields.get("vat"), currency)
            now = _iso(sb.now())
            client_id = sb._client_for(fields)
            client = d["clients"].get(client_id) if client_id else None
            d["client_invoices"][inv_id] = {
                "id": inv_id, "organization_id": sb.organization_id,
                "attachment_id": sb._attachment(data, name), "number": fields.get("number"),
                "status": "unpaid", "currency": currency, "total_amount": total,
                "total_amount_cents": total_cents, "vat_amount": vat,
                "vat_amount_cents": vat_cents, "issue_date": fields.get("issue_date"),
                "due_date": fields.get("due_date"), "created_at": now, "updated_at": now,
                "finalized_at": now, "file_name": name, "imported": True,
                "client": {"id": client["id"], "name": client["name"]} if client else None,
                "_sha": sha,
            }
            d["hashes"][sha] = inv_id
            out.append({"invoice_id": inv_id, "file_name": name})
        return 200, {"client_invoices": out}

    def r_send(self, id: str) -> tuple[int, Any]:
        sb, d = self.sandbox, self.sandbox.state.data
        invoice = d["client_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "client invoice not found")
        sends = d["sends"].setdefault(id, {"calls": 0, "submissions": 0})
        sends["calls"] += 1
        if sends["submissions"]:
            return 204, None  # already submitted: harmless repeat, no resubmission
        if d["settings"]["sending_status"] != "enabled":
            raise _fail(412, sb.config.not_activated_code, "e-invoicing sending is not enabled")
        client = d["clients"].get((invoice.get("client") or {}).get("id", ""))
        if client is None or not client.get("e_invoicing_reachable"):
            raise _fail(412, sb.config.not_reachable_code,
                        "the client cannot receive e-invoices")
        sends["submissions"] += 1
        sends["sent_at"] = sb.now()
        sends["outcome"] = d["outcomes"].get(invoice.get("number") or "", sb.config.outcome)
        return 204, None

    def r_get_client_invoice(self, id: str) -> tuple[int, Any]:
        if id not in self.sandbox.state.data["client_invoices"]:
            raise _fail(404, "not_found", "client invoice not found")
        return 200, {"client_invoice": self.sandbox._invoice_view(id, True)}

    def r_list_client_invoices(self) -> tuple[int, Any]:
        """API.md §5.6: filter[status] (comma-separated or repeated), filter[created_at_from|to],
        filter[updated_at_from|to] (ISO 8601, bounds included), exclude_imported, sort_by
        created_at:asc|desc (default desc), page, per_page."""
        sb = self.sandbox
        query = parse_qs(urlsplit(self.path).query)
        items = [sb._invoice_view(i, sb.config.list_includes_events)
                 for i in sb.state.data["client_invoices"]]
        statuses = {s for v in query.get("filter[status]", []) for s in v.split(",") if s}
        if statuses:
            items = [i for i in items if i["status"] in statuses]
        for name in ("created_at", "updated_at"):
            for bound in ("from", "to"):
                key = f"filter[{name}_{bound}]"
                if key not in self.query:
                    continue
                limit = _parse_time(self.query[key], key)
                items = [i for i in items if (_parse_time(i[name], name) >= limit if bound == "from"
                                              else _parse_time(i[name], name) <= limit)]
        exclude = self.query.get("exclude_imported", "false").lower()
        if exclude not in ("true", "false", "1", "0"):
            raise _fail(422, "invalid_parameter", "exclude_imported must be true or false",
                        parameter="exclude_imported")
        if exclude in ("true", "1"):
            items = [i for i in items if not i.get("imported")]
        sort = self.query.get("sort_by", "created_at:desc")
        if sort not in ("created_at:asc", "created_at:desc"):
            raise _fail(422, "invalid_parameter", "sort_by must be created_at:asc or "
                        "created_at:desc", parameter="sort_by")
        items.sort(key=lambda i: (_parse_time(i["created_at"], "created_at"), i["id"]),
                   reverse=sort == "created_at:desc")
        return self._paginate("client_invoices", items, 100)

    def r_list_clients(self) -> tuple[int, Any]:
        items = sorted(self.sandbox.state.data["clients"].values(), key=lambda c: c["created_at"])
        return self._paginate("clients", [dict(c) for c in items], 100)

    def r_get_client(self, id: str) -> tuple[int, Any]:
        client = self.sandbox.state.data["clients"].get(id)
        if client is None:
            raise _fail(404, "not_found", "client not found")
        return 200, {"client": client}

    def r_list_supplier_invoices(self) -> tuple[int, Any]:
        items = sorted(self.sandbox.state.data["supplier_invoices"].values(),
                       key=lambda i: (i["created_at"], i["id"]))
        q = self.query_all
        wanted = {s for v in q.get("filter[status]", []) + q.get("filter[status][]", [])
                  for s in v.split(",") if s}
        if wanted:
            items = [i for i in items if i["status"] in wanted]
        sources = {s for v in q.get("filter[source]", []) + q.get("filter[source][]", [])
                   for s in v.split(",") if s}
        if sources:
            items = [i for i in items if i.get("source") in sources]
        for name, key, later in (("created_at_from", "created_at", True),
                                 ("created_at_to", "created_at", False),
                                 ("updated_at_from", "updated_at", True),
                                 ("updated_at_to", "updated_at", False)):
            raw = self.query.get(f"filter[{name}]")
            if raw:
                bound = _parse_time(raw, f"filter[{name}]")
                items = [i for i in items if (_parse_time(i[key], key) >= bound) == later
                         or _parse_time(i[key], key) == bound]
        return self._paginate("supplier_invoices", items, self.sandbox.config.supplier_per_page)

    def r_get_supplier_invoice(self, id: str) -> tuple[int, Any]:
        invoice = self.sandbox.state.data["supplier_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "supplier invoice not found")
        return 200, {"supplier_invoice": invoice}

    def r_reject_supplier_invoice(self, id: str) -> tuple[int, Any]:
        from .reasons import RefusalReason

        sb = self.sandbox
        invoice = sb.state.data["supplier_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "supplier invoice not found")
        body = self._json_body()
        if invoice["status"] not in ("to_review", "to_approve", "awaiting_payment"):
            raise _fail(400, "invalid_status_transition",
                        f"a supplier invoice in status {invoice['status']} cannot be rejected")
        code, note = body.get("declined_reason_code"), body.get("declined_note")
        required = datetime.fromtimestamp(sb.now(), UTC) >= _parse_time(
            sb.config.reason_code_required_from, "reason_code_required_from")
        if not code and invoice.get("is_einvoice") and required:
            raise _fail(422, "blank", "declined_reason_code is required to reject a French "
                        "e-invoice", pointer="/declined_reason_code")
        if code and code not in {r.value for r in RefusalReason}:
            raise _fail(422, "inclusion", "declined_reason_code is not an AFNOR reason code",
                        pointer="/declined_reason_code")
        if note is not None and not isinstance(note, str):
            raise _fail(422, "invalid", "declined_note must be a string",
                        pointer="/declined_note")
        now = _iso(sb.now())
        invoice.update(status="rejected", declined_note=note, declined_reason_code=code,
                       updated_at=now)
        if invoice.get("is_einvoice"):  # the refusal travels back to the supplier as 210
            invoice["einvoicing_lifecycle_events"] = [
                *invoice.get("einvoicing_lifecycle_events", []),
                {"status_code": 210, "reason": code, "reason_message": note, "timestamp": now}]
        sb.state.data["supplier_invoices"][id] = invoice  # set again: journaled (see _Tracked)
        return 200, {"supplier_invoice": invoice}

    def r_pay_supplier_invoice(self, id: str) -> tuple[int, Any]:
        sb = self.sandbox
        invoice = sb.state.data["supplier_invoices"].get(id)
        if invoice is None:
            raise _fail(404, "not_found", "supplier invoice not found")
        body = self._json_body()
        if invoice["status"] in ("rejected", "archived", "discarded"):
            raise _fail(400, "invalid_status_transition",
                        f"a supplier invoice in status {invoice['status']} cannot be paid")
        raw = body.get("payment_date") or _iso(sb.now())[:10]
        if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise _fail(422, "invalid", "payment_date must be a date (YYYY-MM-DD)",
                        pointer="/payment_date")
        if raw > _iso(sb.now())[:10]:
            raise _fail(422, "invalid", "payment_date cannot be in the future",
                        pointer="/payment_date")
        now = _iso(sb.now())
        first = invoice["status"] != "paid"
        invoice.update(status="paid", payment_date=raw, updated_at=now)
        if first and invoice.get("is_einvoice"):  # the buyer's side reports 211
            invoice["einvoicing_lifecycle_events"] = [
                *invoice.get("einvoicing_lifecycle_events", []),
                {"status_code": 211, "reason": None, "reason_message": None, "timestamp": now}]
        sb.state.data["supplier_invoices"][id] = invoice  # set again: journaled (see _Tracked)
        return 200, {"supplier_invoice": invoice}

    def _signature(self, attachment_id: str, expires: int) -> str:
        key = self.sandbox.state.data["org"]["signing_key"].encode()
        return hmac.new(key, f"{attachment_id}:{expires}".encode(), "sha256").hexdigest()

    def r_get_attachment(self, id: str) -> tuple[int, Any]:
        sb = self.sandbox
        attachment = sb.state.data["attachments"].get(id)
        if attachment is None:
            raise _fail(404, "not_found", "attachment not found")
        expires = int(sb.now() + 1800)  # signed URLs live 30 minutes (API.md §5.10)
        signature = self._signature(id, expires)
        url = f"{sb.base_url}/_files/{id}?expires={expires}&signature={signature}"
        return 200, {"attachment": {
            "id": id, "created_at": attachment["created_at"], "file_name": attachment["file_name"],
            "file_size": str(attachment["size"]), "file_content_type": attachment["content_type"],
            "url": url, "probative_attachment": {"status": "unavailable"}}}

    def r_download(self, id: str) -> tuple[int, Any]:
        sb = self.sandbox
        attachment = sb.state.data["attachments"].get(id)
        try:
            expires = int(self.query.get("expires", "0"))
        except ValueError:
            expires = 0
        if attachment is None or not _same(
            self.query.get("signature", ""), self._signature(id, expires)
        ) or expires < sb.now():
            raise _Reply(403, b"<Error>AccessDenied</Error>", {"Content-Type": "application/xml"})
        raise _Reply(200, sb.state.get_file(attachment["sha"]),
                     {"Content-Type": attachment["content_type"]})

    # -- Onboarding API -----------------------------------------------------------------------
    def r_create_registration(self) -> tuple[int, Any]:
        sb = self.sandbox
        body = self._json_body()
        flow = body.get("legal_flow")
        raw_user, raw_org = body.get("partner_user"), body.get("organization")
        user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
        organization: dict[str, Any] = raw_org if isinstance(raw_org, dict) else {}
        if not isinstance(flow, str) or not flow:
            raise _fail(422, "blank", "legal_flow is required", pointer="/legal_flow")
        if not user.get("email"):
            raise _fail(422, "blank", "partner_user.email is required",
                        pointer="/partner_user/email")
        if flow == "existing_company" and not re.fullmatch(
            r"\d{9}", str(organization.get("legal_number", ""))
        ):
            raise _fail(422, "invalid", "organization.legal_number must be a SIREN",
                        pointer="/organization/legal_number")
        reg_id = str(uuid.uuid4())
        now = _iso(sb.now())
        registration = {
            "_created": sb.now(), "id": reg_id, "legal_flow": flow,
            "flow": {"type": "seamless", "breakdown": []},
            "status": "pending", "redirection_link": f"{sb.base_url}/onboarding/{reg_id}",
            "partner_redirect_url": body.get("partner_redirect_url"), "created_at": now,
            "updated_at": now, "locale": body.get("locale", "fr"), "partner_user": user,
            "organization": {"id": None, "legal_number": organization.get("legal_number")},
            "stakeholders": [],
        }
        sb.state.data["registrations"][reg_id] = registration
        return 201, {"registration": sb.registration_view(reg_id)}

    def r_list_registrations(self) -> tuple[int, Any]:
        sb = self.sandbox
        items = sorted(sb.state.data["registrations"].values(), key=lambda r: r["created_at"])
        return self._paginate("registrations", [sb.registration_view(r["id"]) for r in items],
                              25)

    def r_get_registration(self, id: str) -> tuple[int, Any]:
        if id not in self.sandbox.state.data["registrations"]:
            raise _fail(404, "not_found", "registration not found")
        return 200, {"registration": self.sandbox.registration_view(id)}

    # -- test hooks ---------------------------------------------------------------------------
    def r_hook_counters(self) -> tuple[int, Any]:
        return 200, {"counters": self.sandbox.counters()}

    def _hook_body(self, allowed: tuple[str, ...]) -> dict[str, Any]:
        body = self._json_body()
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise _fail(400, "invalid_body", f"unknown field {unknown[0]!r} (expected: "
                        f"{', '.join(allowed)})", pointer=f"/{unknown[0]}")
        return body

    def r_hook_clock(self) -> tuple[int, Any]:
        body = self._hook_body(("advance",))
        try:
            self.sandbox.advance(body.get("advance", 0))
        except ValueError as exc:
            raise _fail(400, "invalid_parameter", str(exc), pointer="/advance") from None
        return 200, {"now": _iso(self.sandbox.now())}

    def r_hook_faults(self) -> tuple[int, Any]:
        body = self._hook_body(("next", "kind", "rate", "kinds", "stall_seconds", "seed"))
        sb = self.sandbox
        try:
            plan = None
            if "rate" in body:
                kinds = body.get("kinds", list(FAULT_KINDS))
                if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
                    raise ValueError("kinds must be a list of fault kinds")
                plan = FaultPlan(rate=body["rate"], kinds=tuple(kinds),
                                 stall_seconds=body.get("stall_seconds", 2.0),
                                 seed=body.get("seed"))
            if "next" in body:
                kind = body.get("kind", "500")
                if not isinstance(kind, str):
                    raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
                sb.fail_next(body["next"], kind)
        except ValueError as exc:
            raise _fail(400, "invalid_parameter", str(exc)) from None
        if plan is not None:
            plan.forced = sb.config.faults.forced  # faults already queued stay queued
            sb.set_faults(plan)
        return 200, {"ok": True}

    def r_hook_supplier(self) -> tuple[int, Any]:
        name = self.headers.get("X-File-Name") or "invoice.pdf"
        if len(name) > 255 or any(ch in name for ch in "/\\\0") or name in (".", ".."):
            raise _fail(400, "invalid_parameter", "X-File-Name must be a plain file name",
                        parameter="X-File-Name")
        if not self.body:
            raise _fail(400, "invalid_body", "the body must be the invoice file")
        return 201, {"supplier_invoice": self.sandbox.inject_supplier_invoice(self.body, name)}

    def r_hook_client(self) -> tuple[int, Any]:
        body = self._hook_body(("name", "siren", "reachable"))
        siren = body.get("siren")
        if not isinstance(siren, str) or not re.fullmatch(r"\d{9}", siren):
            raise _fail(400, "invalid_parameter", "siren must be 9 digits", pointer="/siren")
        return 201, {"client": self.sandbox.add_client(
            str(body.get("name") or f"Client {siren}"), siren, bool(body.get("reachable", True)))}

    def r_hook_code(self) -> tuple[int, Any]:
        scopes = self._hook_body(("scopes",)).get("scopes") or list(ALL_SCOPES)
        if not isinstance(scopes, list) or not all(s in ALL_SCOPES for s in scopes):
            raise _fail(400, "invalid_parameter", "scopes must be a list of known scopes: "
                        + " ".join(ALL_SCOPES), pointer="/scopes")
        return 200, {"code": self.sandbox.authorization_code(tuple(scopes))}

    def r_hook_settings(self) -> tuple[int, Any]:
        body = self._hook_body(("sending_status", "receiving_status"))
        for key, value in body.items():
            # Any short word: clients must tolerate enum values they do not know (API.md §3.1).
            if not isinstance(value, str) or not re.fullmatch(r"[a-z_]{1,64}", value):
                raise _fail(400, "invalid_parameter", f"{key} must be a status word such as "
                            "'enabled' or 'disabled'", pointer=f"/{key}")
        self.sandbox.state.data["settings"].update(body)
        return 200, dict(self.sandbox.state.data["settings"])


class _WebhookEmitter:
    """Watches the sent invoices and POSTs a signed event on each lifecycle change.

    A change is a new (number of events, einvoicing_status) pair of a client invoice, as
    its lifecycle plays out on the sandbox clock. The event id is derived from that pair, so
    a restarted sandbox that announces the same state again sends the same id (receivers
    de-duplicate by id). Deliveries are in order, one thread; a delivery that gets no 2xx
    is retried after webhook_backoff, doubled each time, up to webhook_max_attempts; each
    attempt is signed afresh (a new `t`, from the real clock: the receiver checks it against
    its own).
    """

    POLL = 0.05

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self._notified: dict[str, tuple[int, str]] = {}
        self._queue: deque[dict[str, Any]] = deque()
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = self.box.config
        if not (config.webhook_url and config.webhook_secret) or (
                self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="facturflow-sandbox-webhooks")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.box.config.webhook_timeout + 1.0)
            self._thread = None

    def log_copy(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return [dict(entry) for entry in self._log]

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a sandbox thread never dies of a webhook
                self._scan()
                self._deliver_due()
            self._stop.wait(self.POLL)

    def _scan(self) -> None:
        box = self.box
        with box.state.lock:
            data = box.state.data
            for inv_id, sends in data["sends"].items():
                if not sends.get("submissions") or inv_id not in data["client_invoices"]:
                    continue
                view = box._invoice_view(inv_id, True)
                events = view.pop("einvoicing_lifecycle_events", [])
                mark = (len(events), str(view.get("einvoicing_status")))
                if self._notified.get(inv_id) == mark:
                    continue
                self._notified[inv_id] = mark
                org = str(data["org"]["id"])
                event_id = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                          f"facturflow-sandbox:{org}:{inv_id}:{mark}"))
                envelope = {"id": event_id, "subscription_id": f"sub-{org[:8]}",
                            "organization_id": org, "membership_id": None,
                            "type": "v1/client-invoices", "event": "updated",
                            "created_at": _iso(box.now()), "data": view}
                self._queue.append({"event": envelope, "attempt": 0, "due": 0.0})

    def _deliver_due(self) -> None:
        import urllib.error
        import urllib.request

        from ..webhooks import SIGNATURE_HEADER, sign

        config = self.box.config
        while self._queue and not self._stop.is_set():
            job = self._queue[0]
            if time.monotonic() < job["due"]:
                return  # in order: a later event waits for the earlier one's retries
            url, secret = config.webhook_url, config.webhook_secret
            if not url or not secret:
                return
            body = json.dumps(job["event"], ensure_ascii=False).encode()
            job["attempt"] += 1
            entry: dict[str, Any] = {"event_id": job["event"]["id"],
                                     "invoice_id": job["event"]["data"].get("id"),
                                     "einvoicing_status":
                                         job["event"]["data"].get("einvoicing_status"),
                                     "attempt": job["attempt"], "status": None, "error": None}
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, secret, signed_payload=config.webhook_signed_payload),
            })
            try:
                # No proxy: the receiver is a local URL, whatever http_proxy says.
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(request, timeout=config.webhook_timeout) as answer:
                    entry["status"] = answer.status
            except urllib.error.HTTPError as exc:
                entry["status"] = exc.code
            except (OSError, ValueError) as exc:
                entry["error"] = str(exc)
            with self._log_lock:
                self._log.append(entry)
            if entry["status"] is not None and 200 <= entry["status"] < 300:
                self._queue.popleft()
            elif job["attempt"] >= config.webhook_max_attempts:
                entry["gave_up"] = True
                self._queue.popleft()
            else:
                job["due"] = time.monotonic() + min(
                    30.0, config.webhook_backoff * 2 ** (job["attempt"] - 1))
                return


def sandbox(state_dir: str | os.PathLike[str] | None = None, **options: Any) -> Sandbox:
    """A Sandbox to use as a context manager: `with facturflow.sandbox() as sb: sb.base_url`."""
    config = SandboxConfig(state_dir=Path(state_dir) if state_dir is not None else None)
    return Sandbox(config, **options)


__all__ = ["FAULT_KINDS", "FaultPlan", "Sandbox", "SandboxConfig", "read_invoice_fields",
           "sandbox"]
