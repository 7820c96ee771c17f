"""Qonto Business API client (sync and async twins sharing one core) for the PA-as-a-Service flow.

The two clients only differ in how they wait and send; everything else (configuration, auth
headers, request building, answer interpretation, retry decisions, rate limiting, OAuth refresh
with rotating refresh tokens, pagination rules) lives in `_Core` and the `_Op` descriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import json
import logging
import math
import os
import random
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import httpcore
import httpx

from ..outputs import write_private_atomically
from .errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DeadlineError,
    QontoError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    StagingTokenError,
    TransportError,
    ValidationRejectedError,
    error_class_for,
    parse_error_body,
    redact,
)

log = logging.getLogger("facturflow.transmit")

PRODUCTION_URL = "https://thirdparty.qonto.com"
SANDBOX_URL = "https://thirdparty-sandbox.staging.qonto.co"
PRODUCTION_TOKEN_URL = "https://oauth.qonto.com/oauth2/token"
SANDBOX_TOKEN_URL = "https://oauth-sandbox.staging.qonto.co/oauth2/token"
PRODUCTION_ONBOARDING_URL = "https://onboarding-partners.qonto.com"

# Bulk import limits (API.md §5.2). "MB" is not defined by Qonto: decimal megabytes are the
# stricter reading, so the client checks against them before sending.
MAX_IMPORT_FILES = 5
MAX_IMPORT_FILE_BYTES = 5_000_000
MAX_IMPORT_TOTAL_BYTES = 15_000_000
_MULTIPART_PART_OVERHEAD = 256

# Published limits are 1000 req / 10 s and 10 000 req / 10 min per IP (API.md §3.4); stay under.
DEFAULT_RATE_LIMITS: tuple[tuple[int, float], ...] = ((900, 10.0), (9000, 600.0))

# OAuth scopes the PA flow needs (write singular, read plural: API.md §2.3).
PA_SCOPES = (
    "offline_access",
    "organization.read",
    "einvoicing.read",
    "client_invoice.write",
    "client_invoices.read",
    "client.read",
    "supplier_invoice.read",
    "attachment.read",
)

T = TypeVar("T")
AuthKind = Literal["business", "onboarding", "none"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """Refuse anything but HTTPS, except plain HTTP to a loopback address (the sandbox)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url.rstrip("/")
    raise ValueError(f"{what} must be an https:// URL (plain http only to loopback): {url!r}")


# The numeric settings: field -> (environment variable, kind, smallest allowed value, whether
# the smallest value itself is allowed). Every one is checked finite and in range, with the
# variable named in the message (a keyword argument is reported under its variable's name too).
_NUMBERS: dict[str, tuple[str, type, float, bool]] = {
    "timeout": ("QONTO_TIMEOUT", float, 0.0, False),
    "connect_timeout": ("QONTO_CONNECT_TIMEOUT", float, 0.0, False),
    "deadline": ("QONTO_DEADLINE", float, 0.0, False),
    "max_retries": ("QONTO_MAX_RETRIES", int, 0, True),
    "retry_budget": ("QONTO_RETRY_BUDGET", float, 0.0, True),
    "backoff_base": ("QONTO_BACKOFF_BASE", float, 0.0, True),
    "backoff_max": ("QONTO_BACKOFF_MAX", float, 0.0, True),
    "max_response_bytes": ("QONTO_MAX_RESPONSE_BYTES", int, 1, True),
    "max_download_bytes": ("QONTO_MAX_DOWNLOAD_BYTES", int, 1, True),
}
# Larger values are certainly mistakes (a year of waiting, a million retries, a terabyte).
_NUMBER_MAX = {"max_retries": 1000, "max_response_bytes": 1 << 40, "max_download_bytes": 1 << 40}
_SECONDS_MAX = 365 * 24 * 3600.0

MIB = 1024 * 1024


def _number(name: str, raw: object) -> float | int:
    """`raw` (a string from the environment, or a keyword's value) checked for field `name`."""
    variable, kind, low, low_ok = _NUMBERS[name]
    shown = repr(raw) if isinstance(raw, str) else str(raw)
    text = raw.strip() if isinstance(raw, str) else raw
    value: float | int | None = None
    if isinstance(text, str | int | float) and not isinstance(text, bool):
        with contextlib.suppress(ValueError, OverflowError):
            if kind is float:
                value = float(text)
            elif isinstance(text, float):
                value = int(text) if text.is_integer() else None
            else:
                value = int(text)
    if value is None:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{variable} must be {what}, not {shown}", variable=variable)
    high = _NUMBER_MAX.get(name, _SECONDS_MAX)
    if not math.isfinite(value) or value < low or (value == low and not low_ok) or value > high:
        what = "a whole number" if kind is int else "a finite number"
        bound = f">= {low:g}" if low_ok else f"> {low:g}"
        raise ConfigError(f"{variable} must be {what} {bound} and at most {high:.0f}, "
                          f"not {shown}", variable=variable)
    return value


def check_api_key(key: str, what: str = "QONTO_API_KEY") -> str:
    """`key` if it has the 'login:secret-key' form (API.md §2.1), else a ConfigError."""
    login, sep, secret = key.partition(":")
    if (not sep or not login or not secret or key.startswith(("Basic ", "Bearer "))
            or any(not 0x21 <= ord(ch) <= 0x7E for ch in key)):
        # The value is a secret: never repeat it, describe it.
        raise ConfigError(f"{what} must be 'login:secret-key' (the organisation's login, a "
                          "colon, the secret key; printable ASCII, no spaces, no Basic, no "
                          "Base64)", variable=what)
    return key


@dataclass(frozen=True)
class QontoConfig:
    """Everything a client needs; secrets are excluded from repr.

    `timeout` bounds each network operation (the longest silence tolerated); `deadline`
    bounds one whole attempt (connect, send, headers and the full body), so a server that
    drips one byte at a time cannot hold a request forever; `max_response_bytes` caps an API
    answer, `max_download_bytes` an attachment download. Bad values raise ConfigError.
    """

    base_url: str = PRODUCTION_URL
    api_key: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    staging_token: str | None = field(default=None, repr=False)
    token_url: str | None = None
    token_store: Path | None = None
    onboarding_url: str | None = None
    partner_id: str | None = None
    partner_token: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    connect_timeout: float = 10.0
    deadline: float = 120.0
    max_retries: int = 5
    retry_budget: float = 120.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_response_bytes: int = 32 * MIB
    max_download_bytes: int = 256 * MIB
    rate_limits: tuple[tuple[int, float], ...] = DEFAULT_RATE_LIMITS
    verify: bool | str = True
    prefer: Literal["oauth", "api_key"] = "oauth"
    # Marking a supplier invoice paid is not documented beyond "mark-paid exists" (API.md §5.9):
    # the path ({id} is the invoice) and the body field carrying the date are settings.
    supplier_paid_path: str = "/v2/supplier_invoices/{id}/mark_as_paid"
    supplier_paid_field: str = "payment_date"

    def __post_init__(self) -> None:
        for name, variable in (("base_url", "QONTO_BASE_URL"), ("token_url", "QONTO_TOKEN_URL"),
                               ("onboarding_url", "QONTO_ONBOARDING_URL")):
            value = getattr(self, name)
            if value:
                try:
                    check_url(value, variable)
                except ValueError as exc:
                    raise ConfigError(str(exc), variable=variable) from None
        if self.api_key is not None:
            check_api_key(self.api_key)
        if not (self.supplier_paid_path.startswith("/") and "{id}" in self.supplier_paid_path):
            raise ConfigError("QONTO_SUPPLIER_PAID_PATH must be a path starting with / and "
                              "containing {id}", variable="QONTO_SUPPLIER_PAID_PATH")
        if not self.supplier_paid_field.replace("_", "").isalnum():
            raise ConfigError("QONTO_SUPPLIER_PAID_FIELD must be a field name (letters, digits, "
                              "underscores)", variable="QONTO_SUPPLIER_PAID_FIELD")
        for name in _NUMBERS:
            object.__setattr__(self, name, _number(name, getattr(self, name)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> QontoConfig:
        """Read the QONTO_* variables; keyword arguments that are not None win.

        A malformed value raises ConfigError (a ValueError) naming the variable.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "base_url": env.get("QONTO_BASE_URL") or PRODUCTION_URL,
            "api_key": env.get("QONTO_API_KEY") or None,
            "access_token": env.get("QONTO_ACCESS_TOKEN") or None,
            "refresh_token": env.get("QONTO_REFRESH_TOKEN") or None,
            "client_id": env.get("QONTO_CLIENT_ID") or None,
            "client_secret": env.get("QONTO_CLIENT_SECRET") or None,
            "staging_token": env.get("QONTO_STAGING_TOKEN") or None,
            "token_url": env.get("QONTO_TOKEN_URL") or None,
            "token_store": Path(env["QONTO_TOKEN_FILE"]) if env.get("QONTO_TOKEN_FILE") else None,
            "onboarding_url": env.get("QONTO_ONBOARDING_URL") or None,
            "partner_id": env.get("QONTO_PARTNER_ID") or None,
            "partner_token": env.get("QONTO_PARTNER_TOKEN") or None,
            "supplier_paid_path": env.get("QONTO_SUPPLIER_PAID_PATH") or None,
            "supplier_paid_field": env.get("QONTO_SUPPLIER_PAID_FIELD") or None,
        }
        values = {k: v for k, v in values.items()
                  if v is not None or k not in ("supplier_paid_path", "supplier_paid_field")}
        for name, (variable, _kind, _low, _ok) in _NUMBERS.items():
            if env.get(variable, "").strip():  # empty means unset, like the other variables
                values[name] = _number(name, env[variable])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def configured(self) -> bool:
        """True when some Business API credential is set."""
        return bool(self.api_key or self.access_token or self.refresh_token)

    @property
    def secrets(self) -> tuple[str | None, ...]:
        return (
            self.api_key,
            self.access_token,
            self.refresh_token,
            self.client_secret,
            self.staging_token,
            self.partner_token,
        )

    @property
    def resolved_token_url(self) -> str:
        if self.token_url:
            return self.token_url
        if self.base_url == PRODUCTION_URL:
            return PRODUCTION_TOKEN_URL
        if self.base_url == SANDBOX_URL:
            return SANDBOX_TOKEN_URL
        return self.base_url + "/oauth2/token"

    @property
    def resolved_onboarding_url(self) -> str:
        if self.onboarding_url:
            return self.onboarding_url
        if self.base_url == PRODUCTION_URL:
            return PRODUCTION_ONBOARDING_URL
        return self.base_url  # the sandbox shares its host with the Business API sandbox

    @property
    def organization_hint(self) -> str:
        """A stable label for the organisation before asking Qonto (API key login or host)."""
        if self.api_key:
            return self.api_key.split(":", 1)[0]
        return urlsplit(self.base_url).netloc


# ---------------------------------------------------------------------------------------------
# Values returned by the client


@dataclass(frozen=True)
class UploadFile:
    """One file of a bulk import."""

    file_name: str
    data: bytes = field(repr=False)
    content_type: str = "application/pdf"

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> UploadFile:
        p = Path(path)
        return cls(p.name, p.read_bytes(), content_type_for(p.name))


def content_type_for(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {
        "pdf": "application/pdf",
        "xml": "application/xml",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
    }.get(suffix, "application/octet-stream")


@dataclass(frozen=True)
class ImportedInvoice:
    """One entry of a bulk import answer: Qonto's id for the invoice made from `file_name`."""

    invoice_id: str
    file_name: str


@dataclass(frozen=True)
class EInvoicingSettings:
    sending_status: str
    receiving_status: str

    @property
    def sending_enabled(self) -> bool:
        return self.sending_status == "enabled"


@dataclass(frozen=True)
class LifecycleEvent:
    status_code: int
    reason: str | None
    reason_message: str | None
    timestamp: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "reason": self.reason,
            "reason_message": self.reason_message,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class ClientInvoice:
    """The fields of a client invoice the pipeline needs; `raw` keeps the rest."""

    id: str
    number: str | None
    status: str | None
    einvoicing_status: str | None
    lifecycle_events: tuple[LifecycleEvent, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def latest_event(self) -> LifecycleEvent | None:
        # Ordered by timestamp, not array order (API.md §9).
        events = sorted(self.lifecycle_events, key=lambda e: (e.timestamp or "", e.status_code))
        return events[-1] if events else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientInvoice:
        events = []
        for item in data.get("einvoicing_lifecycle_events") or ():
            if not isinstance(item, dict):
                continue
            try:
                code = int(item["status_code"])  # int or string (API.md §10 Q8)
            except (KeyError, TypeError, ValueError):
                continue
            events.append(
                LifecycleEvent(code, item.get("reason"), item.get("reason_message"),
                               item.get("timestamp"))
            )
        return cls(
            id=str(data.get("id")),
            number=data.get("number") or data.get("invoice_number"),
            status=data.get("status"),
            einvoicing_status=data.get("einvoicing_status"),
            lifecycle_events=tuple(events),
            raw=data,
        )


# ---------------------------------------------------------------------------------------------
# Token persistence


@dataclass
class TokenState:
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None  # wall-clock seconds


def load_tokens(path: Path) -> TokenState | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return TokenState(data.get("access_token"), data.get("refresh_token"), data.get("expires_at"))


def save_tokens(path: Path, state: TokenState) -> None:
    """Write atomically with mode 0600: a rotated refresh token must never be lost half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_atomically(path, json.dumps({
        "access_token": state.access_token,
        "refresh_token": state.refresh_token,
        "expires_at": state.expires_at,
    }).encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Rate limiter


class RateLimiter:
    """Sliding-window limiter over several (count, seconds) windows; thread-safe.

    `reserve()` books the earliest slot that keeps every window under its count and returns how
    long the caller must wait for it.
    """

    def __init__(
        self, limits: Sequence[tuple[int, float]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = tuple((n, w) for n, w in limits if n > 0)
        self._clock = clock
        self._lock = threading.Lock()
        longest = max((n for n, _ in self._limits), default=0)
        self._stamps: deque[float] = deque(maxlen=longest or 1)

    def reserve(self) -> float:
        if not self._limits:
            return 0.0
        with self._lock:
            now = self._clock()
            slot = max(now, self._stamps[-1]) if self._stamps else now
            for _ in range(2):
                for count, window in self._limits:
                    if len(self._stamps) >= count:
                        slot = max(slot, self._stamps[-count] + window)
            self._stamps.append(slot)
            return slot - now


# ---------------------------------------------------------------------------------------------
# Operations and the shared core


@dataclass(frozen=True)
class _Op(Generic[T]):
    method: str
    url: str
    parse: Callable[[httpx.Response], T]
    auth: AuthKind = "business"
    params: Mapping[str, Any] | None = None
    json_body: Any = None
    form: Mapping[str, str] | None = None
    files: Sequence[UploadFile] | None = None
    file_field: str = "client_invoices"
    staging: bool = True
    # False for writes that may not be repeated once they reached the server (a registration,
    # a single-use refresh token): those are retried only when the request was never sent.
    replay_safe: bool = True

    @property
    def write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    @property
    def label(self) -> str:
        return f"{self.method} {urlsplit(self.url).path}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ServerError(
            f"answer is not JSON (HTTP {response.status_code})", status=response.status_code
        ) from exc


def _unwrap(key: str) -> Callable[[httpx.Response], dict[str, Any]]:
    def parse(response: httpx.Response) -> dict[str, Any]:
        body = _json(response)
        value = body.get(key) if isinstance(body, dict) else None
        if not isinstance(value, dict):
            raise ServerError(f"answer lacks the {key!r} object", status=response.status_code)
        return value

    return parse


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_page: int | None
    total_pages: int | None


def _page(key: str) -> Callable[[httpx.Response], Page]:
    def parse(response: httpx.Response) -> Page:
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise ServerError(f"answer lacks the {key!r} list", status=response.status_code)
        meta_raw = body.get("meta")
        meta: dict[str, Any] = meta_raw if isinstance(meta_raw, dict) else {}
        nxt, total = meta.get("next_page"), meta.get("total_pages")
        return Page(
            [x for x in body[key] if isinstance(x, dict)],
            nxt if isinstance(nxt, int) else None,
            total if isinstance(total, int) else None,
        )

    return parse


def _no_content(response: httpx.Response) -> None:
    return None


def _maybe(key: str) -> Callable[[httpx.Response], dict[str, Any]]:
    """The `key` object of an answer whose shape is not documented (a wrapped object, the
    object itself, or no body at all: an empty dict then)."""
    def parse(response: httpx.Response) -> dict[str, Any]:
        if not response.content.strip():
            return {}
        body = _json(response)
        if isinstance(body, dict) and isinstance(body.get(key), dict):
            return dict(body[key])
        return dict(body) if isinstance(body, dict) else {}

    return parse


@dataclass(frozen=True)
class ServerClock:
    """The server's `Date` header next to the local clock when the answer arrived."""

    server: float | None  # seconds since the epoch, None when the header is absent or bad
    local: float

    @property
    def skew(self) -> float | None:
        """Local minus server, in seconds (positive: the local clock is ahead)."""
        return None if self.server is None else self.local - self.server


def _clock(response: httpx.Response) -> ServerClock:
    from email.utils import parsedate_to_datetime

    local = time.time()
    try:
        server = parsedate_to_datetime(response.headers.get("date", "")).timestamp()
    except (TypeError, ValueError, IndexError):
        server = None
    return ServerClock(server, local)


# The AFNOR reason codes Qonto accepts for declining a French e-invoice live in
# facturflow.transmit.reasons; the client sends whatever string it is given.


def _raw(response: httpx.Response) -> bytes:
    return response.content


def check_import_limits(files: Sequence[UploadFile]) -> None:
    """Raise ValidationRejectedError (no request made) when a bulk import breaks Qonto's limits."""

    def reject(code: str, detail: str, pointer: str | None = None) -> ValidationRejectedError:
        return ValidationRejectedError(
            f"bulk import refused before sending: {detail}",
            errors=[ApiError(code, detail, pointer)],
        )

    if not files:
        raise reject("no_files", "at least one file is required")
    if len(files) > MAX_IMPORT_FILES:
        raise reject("too_many_files", f"{len(files)} files (at most {MAX_IMPORT_FILES})")
    total = 0
    for index, upload in enumerate(files):
        size = len(upload.data)
        if size > MAX_IMPORT_FILE_BYTES:
            raise reject(
                "file_too_large",
                f"{upload.file_name} is {size} bytes (at most {MAX_IMPORT_FILE_BYTES})",
                f"/client_invoices/{index}",
            )
        total += size + _MULTIPART_PART_OVERHEAD + len(upload.file_name)
    if total > MAX_IMPORT_TOTAL_BYTES:
        raise reject(
            "request_too_large", f"{total} bytes in all (at most {MAX_IMPORT_TOTAL_BYTES})"
        )


# A timeout that fires this close to the deadline is the deadline's (sockets wake up on time,
# the clock read after them may lag a little).
_DEADLINE_SLACK = 0.05

# The deadline of the attempt running in this thread (the sync client); read by the network
# streams below so that every connect, read and write waits at most until then.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "facturflow_qonto_deadline", default=None
)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired("deadline reached")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the attempt's deadline.

    httpx's timeouts bound each read: a server sending one byte per second never trips them.
    Bounding each read by the time left does, in the headers as in the body, on a fresh or a
    reused connection alike.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(
            ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with `_DeadlineStream`s."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address,
            socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport(config: QontoConfig) -> httpx.HTTPTransport:
    """httpx's own transport, its network streams bounded by the attempt's deadline."""
    transport = httpx.HTTPTransport(verify=config.verify)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    # httpx offers no public hook for the network backend; should its internals change, the
    # deadline is still checked between body chunks (the drip test would say so).
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return transport


class _BodyReader:
    """Reads an answer's body under the size cap and the deadline, then rebuilds the response.

    Content-Length over the cap is refused before reading a byte; a body without (or lying
    about) its length is counted while it streams, decoded, so a compressed bomb stops too.
    """

    def __init__(self, core: _Core, op: _Op[Any], response: httpx.Response, deadline: float,
                 cap: int, setting: str) -> None:
        self.core, self.op, self.response, self.deadline = core, op, response, deadline
        self.cap, self.setting = cap, setting
        self.chunks: list[bytes] = []
        self.size = 0
        declared = response.headers.get("content-length", "")
        if declared.strip().isdigit() and int(declared) > cap:
            raise self.too_large(f"announces {int(declared)} bytes")

    def too_large(self, what: str) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"{self.op.label} -> HTTP {self.response.status_code}: the answer {what}, more than "
            f"the {self.cap} allowed ({self.setting})",
            status=self.response.status_code, method=self.op.method,
            path=urlsplit(self.op.url).path,
        )

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise self.too_large(f"exceeds {self.cap} bytes")
        if time.monotonic() >= self.deadline:
            raise self.core.deadline_error(self.op)
        self.chunks.append(chunk)

    def result(self) -> httpx.Response:
        # Decoded already: drop the encoding headers so the copy is not decoded twice.
        headers = [(k, v) for k, v in self.response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length",
                                        "transfer-encoding")]
        return httpx.Response(self.response.status_code, headers=headers,
                              content=b"".join(self.chunks), request=self.response.request,
                              extensions=self.response.extensions)


class _Core:
    """Configuration, auth, request building, answer interpretation and retry policy."""

    def __init__(self, config: QontoConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.limiter = RateLimiter(config.rate_limits)
        self.rng = rng or random.Random()
        self.tokens = TokenState(config.access_token, config.refresh_token, None)
        if config.token_store is not None:
            stored = load_tokens(config.token_store)
            # A stored refresh token is newer than the environment's: it was rotated since.
            if stored is not None and stored.refresh_token:
                self.tokens = stored
        self.use_oauth = bool(self.tokens.access_token or self.tokens.refresh_token) and (
            config.prefer == "oauth" or not config.api_key
        )
        self._host = urlsplit(config.base_url).netloc

    # -- secrets ------------------------------------------------------------------------------
    def secrets(self) -> list[str | None]:
        return [*self.config.secrets, self.tokens.access_token, self.tokens.refresh_token]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets())

    # -- OAuth --------------------------------------------------------------------------------
    def can_refresh(self) -> bool:
        return bool(
            self.use_oauth and self.tokens.refresh_token and self.config.client_id
            and self.config.client_secret
        )

    def needs_refresh(self) -> bool:
        if not self.use_oauth:
            return False
        if not self.tokens.access_token:
            return self.can_refresh()
        exp = self.tokens.expires_at
        return exp is not None and time.time() >= exp and self.can_refresh()

    def refresh_op(self) -> _Op[None]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.tokens.refresh_token or "",
            "client_id": self.config.client_id or "",
            "client_secret": self.config.client_secret or "",
        }
        return _Op("POST", self.config.resolved_token_url, self._store_tokens, auth="none",
                   form=form, replay_safe=False)

    def exchange_code_op(self, code: str, redirect_uri: str) -> _Op[None]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.config.client_id or "",
            "client_secret": self.config.client_secret or "",
        }
        return _Op("POST", self.config.resolved_token_url, self._store_tokens, auth="none",
                   form=form, replay_safe=False)

    def _store_tokens(self, response: httpx.Response) -> None:
        body = _json(response)
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise AuthenticationError("token endpoint answer lacks access_token",
                                      status=response.status_code)
        expires_in = body.get("expires_in")
        self.tokens = TokenState(
            body["access_token"],
            # Refresh tokens rotate: the old one is dead now, keep the new one.
            body.get("refresh_token") or self.tokens.refresh_token,
            time.time() + float(expires_in) - 30 if isinstance(expires_in, int | float) else None,
        )
        self.use_oauth = True
        if self.config.token_store is not None:
            save_tokens(self.config.token_store, self.tokens)
        elif body.get("refresh_token"):
            log.warning("the refresh token rotated but no token store is set (token_store= or "
                        "QONTO_TOKEN_FILE): the new one lives only in this process")

    # -- requests -----------------------------------------------------------------------------
    def headers(self, op: _Op[Any], idempotency_key: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "facturflow"}
        if op.auth == "business":
            if self.use_oauth and self.tokens.access_token:
                headers["Authorization"] = f"Bearer {self.tokens.access_token}"
            elif self.config.api_key:
                headers["Authorization"] = self.config.api_key
        elif op.auth == "onboarding":
            if self.config.partner_token:
                headers["Authorization"] = f"Bearer {self.config.partner_token}"
            if self.config.partner_id:
                headers["Qonto-Partner-Id"] = self.config.partner_id
        if self.config.staging_token and op.staging:
            headers["X-Qonto-Staging-Token"] = self.config.staging_token
        if idempotency_key is not None:
            headers["X-Qonto-Idempotency-Key"] = idempotency_key
        return headers

    def request_args(self, op: _Op[Any], idempotency_key: str | None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "method": op.method,
            "url": op.url,
            "headers": self.headers(op, idempotency_key),
        }
        params = {k: v for k, v in (op.params or {}).items() if v is not None}
        if params:  # an empty mapping would wipe a signed URL's own query string
            args["params"] = params
        if op.files is not None:
            args["files"] = [
                (op.file_field, (f.file_name, f.data, f.content_type)) for f in op.files
            ]
        elif op.form is not None:
            args["data"] = dict(op.form)
        elif op.json_body is not None:
            args["json"] = op.json_body
        return args

    def idempotency_key(self, op: _Op[Any]) -> str | None:
        return str(uuid.uuid4()) if op.write and op.auth != "none" else None

    def interpret(self, op: _Op[T], response: httpx.Response) -> T:
        status = response.status_code
        if op.staging and self._staging_refusal(op, response):
            hint = ("check QONTO_STAGING_TOKEN" if self.config.staging_token
                    else "set QONTO_STAGING_TOKEN for the sandbox")
            raise StagingTokenError(
                f"{op.label}: got an HTML page or a redirect (HTTP {status}) instead of JSON: "
                f"staging token missing or wrong ({hint})",
                status=status, method=op.method, path=urlsplit(op.url).path,
            )
        if 200 <= status < 300:
            try:
                return op.parse(response)
            except QontoError as exc:
                exc.method, exc.path = op.method, urlsplit(op.url).path
                raise
        raise self.error(op, response)

    def _staging_refusal(self, op: _Op[Any], response: httpx.Response) -> bool:
        """True when the answer is what Qonto's sandbox gives without a valid staging token.

        That is a redirect (to its login page) or an HTML page with a 2xx status (API.md §1,
        §7). An HTML 5xx is a proxy or gateway failing (retried like any 5xx), an HTML 4xx is
        read by its status; and production has no staging token to blame.
        """
        if self.config.base_url == PRODUCTION_URL and not self.config.staging_token:
            return False
        status = response.status_code
        if status in (301, 302, 303, 307, 308):
            return True
        html = "text/html" in response.headers.get("content-type", "").lower()
        return 200 <= status < 300 and html and op.parse is not _raw

    def error(self, op: _Op[Any], response: httpx.Response) -> QontoError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        entries, trace_id = parse_error_body(body)
        trace_id = trace_id or response.headers.get("x-tyk-trace-id")
        cls = error_class_for(status)
        if op.url == self.config.resolved_token_url and status in (400, 401):
            cls = AuthenticationError  # invalid_grant / invalid_client: the tokens are the problem
        summary = "; ".join(
            f"{e.code or 'error'}: {e.detail}" if e.detail else (e.code or "error")
            for e in entries
        ) or response.reason_phrase or "no detail"
        message = self.redact(
            f"{op.label} -> HTTP {status}: {summary}"
            + (f" (trace_id {trace_id})" if trace_id else "")
        )
        redacted = [
            replace(e, detail=self.redact(e.detail) if e.detail else None) for e in entries
        ]
        kw: dict[str, Any] = {
            "status": status, "errors": redacted, "trace_id": trace_id,
            "method": op.method, "path": urlsplit(op.url).path,
        }
        if cls is RateLimitedError:
            return RateLimitedError(message, retry_after=retry_after(response), **kw)
        return cls(message, **kw)

    def transport_error(self, op: _Op[Any], exc: Exception,
                        deadline: float | None = None) -> TransportError:
        kind = type(exc).__name__
        connect_failed = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        if deadline is not None and isinstance(exc, httpx.TimeoutException | TimeoutError) and (
            time.monotonic() >= deadline - _DEADLINE_SLACK
        ):
            err: TransportError = self.deadline_error(op)
        else:
            err = TransportError(
                self.redact(f"{op.label}: no answer ({kind}: {exc})"),
                method=op.method, path=urlsplit(op.url).path,
            )
        # Only a failed connection proves the server never saw the request.
        err.request_sent = not connect_failed
        return err

    def deadline_error(self, op: _Op[Any]) -> DeadlineError:
        host = urlsplit(op.url).netloc
        return DeadlineError(
            self.redact(f"{op.label}: no complete answer from {host} within "
                        f"{self.config.deadline:g} s (QONTO_DEADLINE)"),
            method=op.method, path=urlsplit(op.url).path,
        )

    def body_reader(self, op: _Op[Any], response: httpx.Response,
                    deadline: float) -> _BodyReader:
        cap = self.config.max_download_bytes if op.parse is _raw else (
            self.config.max_response_bytes)
        setting = "QONTO_MAX_DOWNLOAD_BYTES" if op.parse is _raw else "QONTO_MAX_RESPONSE_BYTES"
        return _BodyReader(self, op, response, deadline, cap, setting)

    def retry_delay(self, err: QontoError, attempt: int, started: float,
                    op: _Op[Any] | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise `err`."""
        retriable = isinstance(err, TransportError | RateLimitedError) or (
            isinstance(err, ServerError) and err.status is not None and err.status >= 500
            and not isinstance(err, ResponseTooLargeError)  # the same answer would come back
        )
        if op is not None and not op.replay_safe and not isinstance(err, RateLimitedError):
            retriable = isinstance(err, TransportError) and not err.request_sent
        if not retriable or attempt >= self.config.max_retries:
            return None
        cap = min(self.config.backoff_max, self.config.backoff_base * (2**attempt))
        delay = self.rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never synchronised
        if isinstance(err, RateLimitedError) and err.retry_after is not None:
            delay = max(delay, err.retry_after)
        if time.monotonic() - started + delay > self.config.retry_budget:
            return None
        return delay

    # -- endpoints (shared descriptions) ----------------------------------------------------
    def url(self, path: str) -> str:
        return self.config.base_url + path

    def onboarding(self, path: str) -> str:
        return self.config.resolved_onboarding_url + path

    def same_host(self, url: str) -> bool:
        return urlsplit(url).netloc == self._host


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _settings(response: httpx.Response) -> EInvoicingSettings:
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("einvoicing_settings"), dict):
        body = body["einvoicing_settings"]  # tolerate a wrapped answer
    if not isinstance(body, dict):
        raise ServerError("settings answer is not an object", status=response.status_code)
    return EInvoicingSettings(
        str(body.get("sending_status", "unknown")), str(body.get("receiving_status", "unknown"))
    )


def _imported(response: httpx.Response) -> list[ImportedInvoice]:
    body = _json(response)
    items = body.get("client_invoices") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ServerError("bulk import answer lacks 'client_invoices'", status=response.status_code)
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("invoice_id"):
            out.append(ImportedInvoice(str(item["invoice_id"]), str(item.get("file_name", ""))))
    return out


def _client_invoice(response: httpx.Response) -> ClientInvoice:
    return ClientInvoice.from_json(_unwrap("client_invoice")(response))


class _Ops:
    """The endpoint descriptions both clients run."""

    def __init__(self, core: _Core) -> None:
        self.c = core

    def organization(self) -> _Op[dict[str, Any]]:
        return _Op("GET", self.c.url("/v2/organization"), _unwrap("organization"))

    def settings(self) -> _Op[EInvoicingSettings]:
        return _Op("GET", self.c.url("/v2/einvoicing/settings"), _settings)

    def bulk_import(self, files: Sequence[UploadFile]) -> _Op[list[ImportedInvoice]]:
        check_import_limits(files)
        return _Op("POST", self.c.url("/v2/client_invoices/bulk"), _imported, files=tuple(files))

    def send(self, invoice_id: str) -> _Op[None]:
        return _Op("POST", self.c.url(f"/v2/client_invoices/{_id(invoice_id)}/send_by_einvoice"),
                   _no_content)

    def client_invoice(self, invoice_id: str) -> _Op[ClientInvoice]:
        return _Op("GET", self.c.url(f"/v2/client_invoices/{_id(invoice_id)}"), _client_invoice)

    def page(self, path: str, key: str, params: Mapping[str, Any], page: int,
             onboarding: bool = False) -> _Op[Page]:
        url = self.c.onboarding(path) if onboarding else self.c.url(path)
        return _Op("GET", url, _page(key), params={**params, "page": page},
                   auth="onboarding" if onboarding else "business")

    def supplier_invoice(self, invoice_id: str) -> _Op[dict[str, Any]]:
        return _Op("GET", self.c.url(f"/v2/supplier_invoices/{_id(invoice_id)}"),
                   _unwrap("supplier_invoice"))

    def reject_supplier_invoice(self, invoice_id: str, reason_code: str | None,
                                note: str | None) -> _Op[dict[str, Any]]:
        body: dict[str, Any] = {}
        if reason_code is not None:
            body["declined_reason_code"] = reason_code
        if note is not None:
            body["declined_note"] = note
        # A repeated reject answers 400 (already rejected): sent again only if never sent.
        return _Op("POST", self.c.url(f"/v2/supplier_invoices/{_id(invoice_id)}/reject"),
                   _maybe("supplier_invoice"), json_body=body, replay_safe=False)

    def mark_supplier_invoice_paid(self, invoice_id: str,
                                   paid_on: str | None) -> _Op[dict[str, Any]]:
        path = self.c.config.supplier_paid_path.replace("{id}", _id(invoice_id))
        body = {self.c.config.supplier_paid_field: paid_on} if paid_on else {}
        return _Op("POST", self.c.url(path), _maybe("supplier_invoice"), json_body=body)

    def clock(self) -> _Op[ServerClock]:
        return _Op("GET", self.c.url("/v2/organization"), _clock)

    def attachment(self, attachment_id: str) -> _Op[dict[str, Any]]:
        return _Op("GET", self.c.url(f"/v2/attachments/{_id(attachment_id)}"),
                   _unwrap("attachment"))

    def download(self, url: str) -> _Op[bytes]:
        check_url(url, "attachment url")
        # Signed URLs live on a storage host: no credential, no staging header goes there.
        same = self.c.same_host(url)
        return _Op("GET", url, _raw, auth="none", staging=same)

    def client(self, client_id: str) -> _Op[dict[str, Any]]:
        return _Op("GET", self.c.url(f"/v2/clients/{_id(client_id)}"), _unwrap("client"))

    def create_registration(self, body: Mapping[str, Any]) -> _Op[dict[str, Any]]:
        return _Op("POST", self.c.onboarding("/register/registrations"), _unwrap("registration"),
                   auth="onboarding", json_body=dict(body), replay_safe=False)

    def registration(self, registration_id: str) -> _Op[dict[str, Any]]:
        return _Op("GET", self.c.onboarding(f"/register/registrations/{_id(registration_id)}"),
                   _unwrap("registration"), auth="onboarding")


def _id(value: str) -> str:
    """Ids go into paths: refuse anything that could change the path."""
    if not value or any(ch in value for ch in "/?#%\\ ") or value in (".", ".."):
        raise ValueError(f"not a Qonto id: {value!r}")
    return value


def _pages_done(page: Page, current: int) -> int | None:
    nxt = page.next_page
    if nxt is None or nxt <= current:
        return None
    if page.total_pages is not None and nxt > page.total_pages:
        return None
    return nxt


# ---------------------------------------------------------------------------------------------
# The clients


def client_matches(client: Mapping[str, Any], siren: str) -> bool:
    """True when a Qonto client is the company with this SIREN: its `siren`, the first part of
    its `e_invoicing_address` (siren, siren_siret, ...) or the SIREN inside a French VAT number."""
    address = str(client.get("e_invoicing_address") or "")
    vat = str(client.get("vat_number") or "").replace(" ", "").upper()
    return (str(client.get("siren") or "") == siren or address.split("_")[0] == siren
            or (vat.startswith("FR") and vat[4:] == siren))


def _timeout(config: QontoConfig) -> httpx.Timeout:
    return httpx.Timeout(config.timeout, connect=config.connect_timeout)


class QontoClient:
    """Synchronous Qonto client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        config: QontoConfig | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        **overrides: Any,
    ) -> None:
        self.config = config if config is not None else QontoConfig.from_env(**overrides)
        self._core = _Core(self.config, rng=rng)
        self._ops = _Ops(self._core)
        self._lock = threading.Lock()
        self._http = httpx.Client(
            timeout=_timeout(self.config), verify=self.config.verify,
            transport=transport if transport is not None else _deadline_transport(self.config),
            follow_redirects=False,
        )

    def __enter__(self) -> QontoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"QontoClient(base_url={self.config.base_url!r})"

    def _run(self, op: _Op[T]) -> T:
        core = self._core
        if op.auth == "business" and core.needs_refresh():
            self._refresh()
        key = core.idempotency_key(op)
        started, attempt, refreshed = time.monotonic(), 0, False
        while True:
            wait = core.limiter.reserve()
            if wait > 0:
                time.sleep(wait)
            deadline = time.monotonic() + self.config.deadline
            try:
                response = self._send(op, key, deadline)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                err: QontoError = core.transport_error(op, exc, deadline)
            except (DeadlineError, ResponseTooLargeError) as exc:
                err = exc
            else:
                try:
                    return core.interpret(op, response)
                except StagingTokenError:
                    raise
                except AuthenticationError as exc:
                    if op.auth == "business" and not refreshed and core.can_refresh():
                        refreshed = True
                        self._refresh()
                        continue
                    err = exc
                except QontoError as exc:
                    err = exc
            delay = core.retry_delay(err, attempt, started, op)
            log.debug("%s attempt %d failed: %s", op.label, attempt + 1, err.message)
            if delay is None:
                raise err
            attempt += 1
            time.sleep(delay)

    def _send(self, op: _Op[Any], key: str | None, deadline: float) -> httpx.Response:
        """One attempt: the request sent and its whole answer read, by `deadline`."""
        token = _DEADLINE.set(deadline)
        try:
            request = self._http.build_request(**self._core.request_args(op, key))
            response = self._http.send(request, stream=True)
            try:
                body = self._core.body_reader(op, response, deadline)
                for chunk in response.iter_bytes():
                    body.add(chunk)
                return body.result()
            finally:
                response.close()
        finally:
            _DEADLINE.reset(token)

    def _refresh(self) -> None:
        with self._lock:
            self._run(self._core.refresh_op())

    # -- OAuth ------------------------------------------------------------------------------
    def exchange_code(self, code: str, redirect_uri: str) -> None:
        """Trade an authorization code for tokens (persisted when a token store is set)."""
        self._run(self._core.exchange_code_op(code, redirect_uri))

    # -- endpoints --------------------------------------------------------------------------
    def organization(self) -> dict[str, Any]:
        """GET /v2/organization: the connectivity check for both auth schemes."""
        return self._run(self._ops.organization())

    def einvoicing_settings(self) -> EInvoicingSettings:
        """GET /v2/einvoicing/settings."""
        return self._run(self._ops.settings())

    def import_client_invoices(self, files: Sequence[UploadFile]) -> list[ImportedInvoice]:
        """POST /v2/client_invoices/bulk (1-5 files, limits checked before sending)."""
        return self._run(self._ops.bulk_import(files))

    def send_by_einvoice(self, invoice_id: str) -> None:
        """POST /v2/client_invoices/{id}/send_by_einvoice: accepted (204), not yet delivered."""
        self._run(self._ops.send(invoice_id))

    def get_client_invoice(self, invoice_id: str) -> ClientInvoice:
        return self._run(self._ops.client_invoice(invoice_id))

    def iter_client_invoices(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._paginate("/v2/client_invoices", "client_invoices", params)

    def list_client_invoices(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.iter_client_invoices(**params))

    def iter_supplier_invoices(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._paginate("/v2/supplier_invoices", "supplier_invoices", params)

    def list_supplier_invoices(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.iter_supplier_invoices(**params))

    def get_supplier_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self._run(self._ops.supplier_invoice(invoice_id))

    def reject_supplier_invoice(self, invoice_id: str, reason_code: str | None,
                                note: str | None = None) -> dict[str, Any]:
        """POST /v2/supplier_invoices/{id}/reject with `declined_reason_code` (an AFNOR code,
        facturflow.transmit.reasons; Qonto answers 422 without one for a French e-invoice
        since 1 September 2026) and `declined_note`. The invoice as answered, or {}."""
        return self._run(self._ops.reject_supplier_invoice(invoice_id, reason_code, note))

    def mark_supplier_invoice_paid(self, invoice_id: str,
                                   paid_on: str | None = None) -> dict[str, Any]:
        """Mark a supplier invoice paid (on `paid_on`, YYYY-MM-DD; default: Qonto's today).
        Path and date field are settings (QONTO_SUPPLIER_PAID_PATH, _FIELD)."""
        return self._run(self._ops.mark_supplier_invoice_paid(invoice_id, paid_on))

    def server_clock(self) -> ServerClock:
        """The server's Date header against the local clock (GET /v2/organization)."""
        return self._run(self._ops.clock())

    def find_clients(self, siren: str) -> list[dict[str, Any]]:
        """The clients whose SIREN (or e-invoicing address, or French VAT number) is `siren`."""
        return [c for c in self.iter_clients() if client_matches(c, siren)]

    def get_attachment(self, attachment_id: str) -> dict[str, Any]:
        return self._run(self._ops.attachment(attachment_id))

    def download_attachment(self, attachment_id: str) -> tuple[str, bytes]:
        """The file name and bytes of an attachment (its signed URL lives 30 minutes)."""
        attachment = self.get_attachment(attachment_id)
        url = attachment.get("url")
        if not isinstance(url, str):
            raise ServerError("attachment has no url")
        return str(attachment.get("file_name") or attachment_id), self._run(self._ops.download(url))

    def iter_clients(self, **params: Any) -> Iterator[dict[str, Any]]:
        return self._paginate("/v2/clients", "clients", params)

    def get_client(self, client_id: str) -> dict[str, Any]:
        return self._run(self._ops.client(client_id))

    def create_registration(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /register/registrations on the Onboarding API (partner token + partner id)."""
        return self._run(self._ops.create_registration(body))

    def get_registration(self, registration_id: str) -> dict[str, Any]:
        return self._run(self._ops.registration(registration_id))

    def list_registrations(self, **params: Any) -> list[dict[str, Any]]:
        return list(self._paginate("/register/registrations", "registrations", params, True))

    def _paginate(self, path: str, key: str, params: Mapping[str, Any],
                  onboarding: bool = False) -> Iterator[dict[str, Any]]:
        current: int | None = 1
        while current is not None:
            page = self._run(self._ops.page(path, key, params, current, onboarding))
            yield from page.items
            current = _pages_done(page, current)


class AsyncQontoClient:
    """The asyncio twin of QontoClient: same methods, awaited; `aiter_*` for pagination."""

    def __init__(
        self,
        config: QontoConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        **overrides: Any,
    ) -> None:
        self.config = config if config is not None else QontoConfig.from_env(**overrides)
        self._core = _Core(self.config, rng=rng)
        self._ops = _Ops(self._core)
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            timeout=_timeout(self.config), verify=self.config.verify, transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> AsyncQontoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncQontoClient(base_url={self.config.base_url!r})"

    async def _run(self, op: _Op[T]) -> T:
        core = self._core
        if op.auth == "business" and core.needs_refresh():
            await self._refresh()
        key = core.idempotency_key(op)
        started, attempt, refreshed = time.monotonic(), 0, False
        while True:
            wait = core.limiter.reserve()
            if wait > 0:
                await asyncio.sleep(wait)
            deadline = time.monotonic() + self.config.deadline
            try:
                response = await self._send(op, key, deadline)
            except (httpx.TransportError, httpx.TimeoutException, TimeoutError) as exc:
                err: QontoError = core.transport_error(op, exc, deadline)
            except (DeadlineError, ResponseTooLargeError) as exc:
                err = exc
            else:
                try:
                    return core.interpret(op, response)
                except StagingTokenError:
                    raise
                except AuthenticationError as exc:
                    if op.auth == "business" and not refreshed and core.can_refresh():
                        refreshed = True
                        await self._refresh()
                        continue
                    err = exc
                except QontoError as exc:
                    err = exc
            delay = core.retry_delay(err, attempt, started, op)
            log.debug("%s attempt %d failed: %s", op.label, attempt + 1, err.message)
            if delay is None:
                raise err
            attempt += 1
            await asyncio.sleep(delay)

    async def _send(self, op: _Op[Any], key: str | None, deadline: float) -> httpx.Response:
        """One attempt: the request sent and its whole answer read, by `deadline`."""
        # Cancelling the whole attempt at the deadline covers connect, headers and body at once.
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            request = self._http.build_request(**self._core.request_args(op, key))
            response = await self._http.send(request, stream=True)
            try:
                body = self._core.body_reader(op, response, deadline)
                async for chunk in response.aiter_bytes():
                    body.add(chunk)
                return body.result()
            finally:
                await response.aclose()

    async def _refresh(self) -> None:
        async with self._lock:
            await self._run(self._core.refresh_op())

    async def exchange_code(self, code: str, redirect_uri: str) -> None:
        await self._run(self._core.exchange_code_op(code, redirect_uri))

    async def organization(self) -> dict[str, Any]:
        return await self._run(self._ops.organization())

    async def einvoicing_settings(self) -> EInvoicingSettings:
        return await self._run(self._ops.settings())

    async def import_client_invoices(self, files: Sequence[UploadFile]) -> list[ImportedInvoice]:
        return await self._run(self._ops.bulk_import(files))

    async def send_by_einvoice(self, invoice_id: str) -> None:
        await self._run(self._ops.send(invoice_id))

    async def get_client_invoice(self, invoice_id: str) -> ClientInvoice:
        return await self._run(self._ops.client_invoice(invoice_id))

    def aiter_client_invoices(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        return self._paginate("/v2/client_invoices", "client_invoices", params)

    async def list_client_invoices(self, **params: Any) -> list[dict[str, Any]]:
        return [x async for x in self.aiter_client_invoices(**params)]

    def aiter_supplier_invoices(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        return self._paginate("/v2/supplier_invoices", "supplier_invoices", params)

    async def list_supplier_invoices(self, **params: Any) -> list[dict[str, Any]]:
        return [x async for x in self.aiter_supplier_invoices(**params)]

    async def get_supplier_invoice(self, invoice_id: str) -> dict[str, Any]:
        return await self._run(self._ops.supplier_invoice(invoice_id))

    async def reject_supplier_invoice(self, invoice_id: str, reason_code: str | None,
                                      note: str | None = None) -> dict[str, Any]:
        return await self._run(self._ops.reject_supplier_invoice(invoice_id, reason_code, note))

    async def mark_supplier_invoice_paid(self, invoice_id: str,
                                         paid_on: str | None = None) -> dict[str, Any]:
        return await self._run(self._ops.mark_supplier_invoice_paid(invoice_id, paid_on))

    async def server_clock(self) -> ServerClock:
        return await self._run(self._ops.clock())

    async def find_clients(self, siren: str) -> list[dict[str, Any]]:
        return [c async for c in self.aiter_clients() if client_matches(c, siren)]

    async def get_attachment(self, attachment_id: str) -> dict[str, Any]:
        return await self._run(self._ops.attachment(attachment_id))

    async def download_attachment(self, attachment_id: str) -> tuple[str, bytes]:
        attachment = await self.get_attachment(attachment_id)
        url = attachment.get("url")
        if not isinstance(url, str):
            raise ServerError("attachment has no url")
        data = await self._run(self._ops.download(url))
        return str(attachment.get("file_name") or attachment_id), data

    def aiter_clients(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        return self._paginate("/v2/clients", "clients", params)

    async def get_client(self, client_id: str) -> dict[str, Any]:
        return await self._run(self._ops.client(client_id))

    async def create_registration(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._run(self._ops.create_registration(body))

    async def get_registration(self, registration_id: str) -> dict[str, Any]:
        return await self._run(self._ops.registration(registration_id))

    async def list_registrations(self, **params: Any) -> list[dict[str, Any]]:
        it = self._paginate("/register/registrations", "registrations", params, True)
        return [x async for x in it]

    async def _paginate(self, path: str, key: str, params: Mapping[str, Any],
                        onboarding: bool = False) -> AsyncIterator[dict[str, Any]]:
        current: int | None = 1
        while current is not None:
            page = await self._run(self._ops.page(path, key, params, current, onboarding))
            for item in page.items:
                yield item
            current = _pages_done(page, current)


__all__ = [
    "DEFAULT_RATE_LIMITS",
    "MAX_IMPORT_FILES",
    "MAX_IMPORT_FILE_BYTES",
    "MAX_IMPORT_TOTAL_BYTES",
    "PA_SCOPES",
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "AsyncQontoClient",
    "ClientInvoice",
    "EInvoicingSettings",
    "ImportedInvoice",
    "LifecycleEvent",
    "QontoClient",
    "QontoConfig",
    "RateLimiter",
    "ServerClock",
    "UploadFile",
    "check_import_limits",
    "client_matches",
]
