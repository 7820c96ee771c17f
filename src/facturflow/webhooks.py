"""Qonto webhooks: verify a signed event and read it into a typed `WebhookEvent`.

    event = facturflow.webhooks.verify(request.headers, request.body, secret)

What is checked, and what is assumed (API.md §5.13, §5.12 and §10 Q14: the public material gives
the header format, not the exact signed string):

- the header `Qonto-SHA256-Signature` (any case; `header=` to change it) holds
  `t={unix timestamp},v1={hex HMAC-SHA256}`; items are comma-separated `key=value` pairs,
  unknown keys are ignored, `t` must appear exactly once. Several `v1` items are accepted and
  the event is genuine when **any** of them matches (Stripe-style schemes send one per active
  secret while a secret is being rotated);
- the signed string is `"{t}.{body}"`: the timestamp, a dot, then the raw body bytes, as
  the `t=…,v1=…` schemes this format comes from sign it. `signed_payload="{body}"` (the body
  alone) or any other template with `{t}` and `{body}` changes that, should Qonto's turn out
  different;
- the comparison is constant-time (hmac.compare_digest);
- `t` must be within `tolerance` seconds (default 300) of now, either way: an old event is
  refused as stale (a captured request replayed later), a far-future one too (clock skew);
- an event id seen before is refused as a replay. `verify` remembers ids in a bounded
  in-memory store by default (`replay_store=`); `DurableReplayStore` keeps them in a SQLite
  file (the receiver of `facturflow webhook serve` keeps its own in the state folder, and
  records an id only once the event's effect is durable, so that a retried delivery of an
  event that failed half-way is processed again). `replay_store=None` skips the check.

Every failure raises a subclass of `WebhookError` (itself a `FacturflowError`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import FacturflowError

SIGNATURE_HEADER = "Qonto-SHA256-Signature"
DEFAULT_TOLERANCE = 300.0
DEFAULT_SIGNED_PAYLOAD = "{t}.{body}"
CLIENT_INVOICES = "v1/client-invoices"


class WebhookError(FacturflowError):
    """A webhook event could not be accepted."""


class WebhookFormatError(WebhookError):
    """The body is not a JSON event object with an id."""


class WebhookSignatureError(WebhookError):
    """The signature header is missing, malformed, or no signature in it matches."""


class WebhookStaleError(WebhookError):
    """The signed timestamp is further from now than the tolerance."""


class WebhookReplayError(WebhookError):
    """An event with this id was accepted before."""


class ReplayStore(Protocol):
    def remember(self, event_id: str, timestamp: float) -> bool:
        """Record the id; False when it was recorded already (a replay)."""
        ...


class MemoryReplayStore:
    """The last `size` event ids, in memory (thread-safe)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, event_id: str, timestamp: float) -> bool:
        with self._lock:
            if event_id in self._ids:
                return False
            self._ids[event_id] = timestamp
            while len(self._ids) > self.size:
                self._ids.popitem(last=False)
            return True

    def seen(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._ids


class DurableReplayStore:
    """Event ids in a SQLite file, committed with fsync before `remember` returns; the oldest
    are dropped beyond `size` (an event that old is refused as stale anyway)."""

    def __init__(self, path: str | Path, size: int = 100_000) -> None:
        self.path, self.size = Path(path), size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, "
                         "timestamp REAL NOT NULL, received_at REAL NOT NULL)")

    def seen(self, event_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM seen WHERE event_id=?",
                                    (event_id,)).fetchone() is not None

    def remember(self, event_id: str, timestamp: float) -> bool:
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)",
                                      (event_id, timestamp, time.time()))
            if cursor.rowcount:
                self._db.execute("DELETE FROM seen WHERE rowid <= (SELECT max(rowid) FROM seen)"
                                 " - ?", (self.size,))
            return bool(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_DEFAULT_STORE = MemoryReplayStore()


@dataclass(frozen=True)
class WebhookEvent:
    """One verified event: Qonto's envelope (API.md §5.13), read defensively."""

    id: str
    type: str  # "v1/client-invoices"
    action: str | None  # "created" or "updated" (the field's name is not documented)
    created_at: str | None
    organization_id: str | None
    subscription_id: str | None
    data: Mapping[str, Any]
    timestamp: int  # the signed `t`
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def invoice_id(self) -> str | None:
        """The client invoice's id, for a v1/client-invoices event."""
        value = self.data.get("id")
        return str(value) if value is not None and self.type == CLIENT_INVOICES else None

    @property
    def einvoicing_status(self) -> str | None:
        value = self.data.get("einvoicing_status")
        return str(value) if value is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "action": self.action,
                "created_at": self.created_at, "organization_id": self.organization_id,
                "subscription_id": self.subscription_id, "timestamp": self.timestamp,
                "invoice_id": self.invoice_id, "einvoicing_status": self.einvoicing_status,
                "data": dict(self.data)}


def _header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """A header's value from a mapping (any case) or an http.client/email Message."""
    get_all = getattr(headers, "get_all", None)
    if callable(get_all):
        values = get_all(name) or []
        return ",".join(str(v) for v in values) if values else None
    wanted = name.lower()
    found = [str(v) for k, v in headers.items() if str(k).lower() == wanted]
    return ",".join(found) if found else None


def parse_signature_header(value: str) -> tuple[int, list[str]]:
    """(t, [v1 signatures]) of a `t=…,v1=…` header; WebhookSignatureError when malformed."""
    stamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise WebhookSignatureError(f"malformed {SIGNATURE_HEADER} item {item.strip()!r} "
                                        "(expected key=value)")
        if key == "t":
            stamps.append(val.strip())
        elif key == "v1":
            signatures.append(val.strip().lower())
    if len(stamps) != 1:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} must carry one t=timestamp, "
                                    f"it carries {len(stamps)}")
    if not stamps[0].isdigit() or len(stamps[0]) > 12:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} timestamp {stamps[0]!r} is not a "
                                    "whole number of seconds")
    if not signatures:
        raise WebhookSignatureError(f"{SIGNATURE_HEADER} carries no v1 signature")
    return int(stamps[0]), signatures


def signed_bytes(timestamp: int, body: bytes, signed_payload: str = DEFAULT_SIGNED_PAYLOAD
                 ) -> bytes:
    """The bytes the HMAC covers: `signed_payload` with {t} and {body} filled in."""
    if signed_payload.count("{body}") != 1:
        raise ValueError(f"signed_payload must contain {{body}} once, not {signed_payload!r}")
    before, after = signed_payload.split("{body}")
    return (before.replace("{t}", str(timestamp)).encode() + body
            + after.replace("{t}", str(timestamp)).encode())


def sign(body: bytes, secret: str | bytes, timestamp: int | None = None, *,
         signed_payload: str = DEFAULT_SIGNED_PAYLOAD) -> str:
    """The header value for `body` (what the sandbox sends): `t=…,v1=…`."""
    t = int(time.time()) if timestamp is None else timestamp
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, signed_bytes(t, body, signed_payload), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify_signature(headers: Mapping[str, str] | Any, body: bytes, secret: str | bytes, *,
                     tolerance: float = DEFAULT_TOLERANCE, now: float | None = None,
                     signed_payload: str = DEFAULT_SIGNED_PAYLOAD,
                     header: str = SIGNATURE_HEADER) -> int:
    """Check the signature and its age; return the signed timestamp."""
    value = _header(headers, header)
    if value is None:
        raise WebhookSignatureError(f"no {header} header")
    timestamp, signatures = parse_signature_header(value)
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise WebhookSignatureError("the webhook secret is empty")
    expected = hmac.new(key, signed_bytes(timestamp, body, signed_payload),
                        hashlib.sha256).hexdigest()
    # Every candidate is compared, so the time taken does not say which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookSignatureError(f"{header}: no v1 signature matches the body "
                                    "(wrong secret, or a body changed on the way)")
    age = (time.time() if now is None else now) - timestamp
    if tolerance >= 0 and abs(age) > tolerance:
        when = f"{int(age)} s old" if age > 0 else f"{int(-age)} s in the future"
        raise WebhookStaleError(f"the event was signed {when}, beyond the tolerance of "
                                f"{tolerance:g} s (a replayed request, or a clock off)")
    return timestamp


def parse_event(body: bytes, timestamp: int = 0) -> WebhookEvent:
    """The event in a (verified) body; WebhookFormatError when it is not one."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookFormatError(f"the webhook body is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise WebhookFormatError("the webhook body is not an event object with a string id")
    data = raw.get("data")

    def text(key: str) -> str | None:
        value = raw.get(key)
        return str(value) if value is not None else None

    return WebhookEvent(
        id=raw["id"], type=str(raw.get("type") or ""),
        action=text("event") or text("action") or text("event_type"),
        created_at=text("created_at"), organization_id=text("organization_id"),
        subscription_id=text("subscription_id"),
        data=data if isinstance(data, dict) else {}, timestamp=timestamp, raw=raw)


_USE_DEFAULT: Any = object()


def verify(headers: Mapping[str, str] | Any, body: bytes, secret: str | bytes, *,
           tolerance: float = DEFAULT_TOLERANCE, now: float | None = None,
           signed_payload: str = DEFAULT_SIGNED_PAYLOAD, header: str = SIGNATURE_HEADER,
           replay_store: ReplayStore | None = _USE_DEFAULT) -> WebhookEvent:
    """Verify a webhook delivery and return its event (see the module docstring).

    Raises WebhookSignatureError, WebhookStaleError, WebhookFormatError or WebhookReplayError.
    `tolerance` < 0 disables the age check; `replay_store=None` the replay check.
    """
    timestamp = verify_signature(headers, body, secret, tolerance=tolerance, now=now,
                                 signed_payload=signed_payload, header=header)
    event = parse_event(body, timestamp)
    store = _DEFAULT_STORE if replay_store is _USE_DEFAULT else replay_store
    if store is not None and not store.remember(event.id, timestamp):
        raise WebhookReplayError(f"event {event.id} was received before (a replay)")
    return event


__all__ = ["CLIENT_INVOICES", "DEFAULT_SIGNED_PAYLOAD", "DEFAULT_TOLERANCE", "SIGNATURE_HEADER",
           "DurableReplayStore", "MemoryReplayStore", "ReplayStore", "WebhookError",
           "WebhookEvent", "WebhookFormatError", "WebhookReplayError", "WebhookSignatureError",
           "WebhookStaleError", "parse_event", "parse_signature_header", "sign", "signed_bytes",
           "verify", "verify_signature"]
