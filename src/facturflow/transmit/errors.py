"""The Qonto exception tree: every failure of a call to Qonto (or the sandbox) is one of these.

    TransmitError (facturflow.errors)
    └── QontoError                  a call to Qonto failed; carries status, codes, details, trace_id
        ├── AuthenticationError     401: credentials missing, wrong or expired
        │   └── StagingTokenError   sandbox answered HTML or a 302: staging token missing or wrong
        ├── PermissionDeniedError   403: missing OAuth scope, plan or country gating
        ├── NotFoundError           404: unknown id or path
        ├── PreconditionError       412: e.g. recipient not reachable, e-invoicing not activated
        ├── ValidationRejectedError 400/413/422, or a bulk-import limit checked before sending
        ├── RateLimitedError        429 after the retries ran out; `retry_after` in seconds
        ├── ServerError             5xx after the retries ran out, or an answer that is not JSON
        │   └── ResponseTooLargeError   the answer exceeds the configured size cap (not retried)
        └── TransportError          no answer: connection refused or dropped, timeout, TLS
            └── DeadlineError       no complete answer within the total deadline of a request
    ConfigError (also a ValueError)  a QONTO_* / FACTURFLOW_* setting is missing or malformed
    SandboxBusyError                 another process serves a sandbox from the same state folder

Messages never carry a credential: every message goes through `redact()` with the secrets the
client knows, and headers are never copied into an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import TransmitError

REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class ApiError:
    """One entry of Qonto's `errors` array (fields missing in the answer are None)."""

    code: str | None
    detail: str | None
    pointer: str | None = None
    parameter: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "code": self.code,
            "detail": self.detail,
            "pointer": self.pointer,
            "parameter": self.parameter,
        }


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every known secret (and each half of a `login:secret` key) in `text`."""
    pieces: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        pieces.add(secret)
        if ":" in secret:
            # The login half of an API key is not secret; its secret half is.
            pieces.add(secret.split(":", 1)[1])
    for piece in sorted(pieces, key=len, reverse=True):
        if len(piece) >= 4:
            text = text.replace(piece, REDACTED)
    return text


class QontoError(TransmitError):
    """A call to Qonto failed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Sequence[ApiError] = (),
        trace_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message, source=source)
        self.status = status
        self.errors = tuple(errors)
        self.trace_id = trace_id
        self.method = method
        self.path = path

    @property
    def codes(self) -> tuple[str, ...]:
        """The machine-readable Qonto error codes, in the order of the answer."""
        return tuple(e.code for e in self.errors if e.code)

    @property
    def details(self) -> tuple[str, ...]:
        """The human-readable details of the answer."""
        return tuple(e.detail for e in self.errors if e.detail)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description (no secrets: built from the redacted message)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "status": self.status,
            "errors": [e.as_dict() for e in self.errors],
            "trace_id": self.trace_id,
        }


class AuthenticationError(QontoError):
    """401: credentials missing, wrong or expired (and an OAuth refresh did not help)."""


class StagingTokenError(AuthenticationError):
    """The sandbox answered an HTML login page or a 302: staging token missing or wrong."""


class PermissionDeniedError(QontoError):
    """403: the credential lacks a scope, or the plan or country does not allow the call."""

    @property
    def missing_scope(self) -> bool:
        return any("missing required oauth scope" in d.lower() for d in self.details)


class NotFoundError(QontoError):
    """404: the id or the path is unknown."""


class PreconditionError(QontoError):
    """412: a prerequisite is not met (recipient unreachable, e-invoicing not activated)."""


class ValidationRejectedError(QontoError):
    """400, 413 or 422: Qonto refused the request's content; or a local limit check failed."""


class RateLimitedError(QontoError):
    """429 answered until the retry budget ran out."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(QontoError):
    """5xx answered until the retry budget ran out, or an answer that could not be understood."""


class TransportError(QontoError):
    """No usable answer: connection refused or dropped, timeout, TLS failure."""

    request_sent: bool = True  # False when the connection failed: the server saw nothing


class ResponseTooLargeError(ServerError):
    """The answer is larger than the configured cap: refused before (or while) reading it."""


class DeadlineError(TransportError):
    """No complete answer (connect, send, headers and the whole body) within the deadline."""


class ConfigError(TransmitError, ValueError):
    """A setting (QONTO_*, FACTURFLOW_*, or the matching keyword) is missing or malformed.

    The message names the variable and the bad value (never a secret's value). A ValueError
    too, for callers that caught the ValueError QontoConfig used to raise.
    """

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class SandboxBusyError(TransmitError):
    """Another sandbox (in this process or another) already serves this state folder."""


_BY_STATUS: Mapping[int, type[QontoError]] = {
    400: ValidationRejectedError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: PreconditionError,
    412: PreconditionError,
    413: ValidationRejectedError,
    422: ValidationRejectedError,
    429: RateLimitedError,
}


def error_class_for(status: int) -> type[QontoError]:
    """The exception class for an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    if status == 428:
        return PreconditionError
    return ValidationRejectedError if 400 <= status < 500 else ServerError


def parse_error_body(body: Any) -> tuple[list[ApiError], str | None]:
    """Qonto error entries and trace id from a decoded body, tolerating every observed shape.

    Documented: `{"errors": [{code, detail, source: {pointer, parameter}}], "trace_id"}`.
    Observed too: `{"errors": {"message": ...}}` and flat `{"code", "message"}` bodies.
    """
    if not isinstance(body, dict):
        return [], None
    trace = body.get("trace_id")
    trace_id = str(trace) if isinstance(trace, str | int) else None
    raw = body.get("errors")
    entries: list[ApiError] = []
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict):
                entries.append(_entry(item))
            elif isinstance(item, str):
                entries.append(ApiError(code=None, detail=item))
    elif isinstance(raw, dict):
        entries.append(_entry(raw))
    elif isinstance(raw, str):
        entries.append(ApiError(code=None, detail=raw))
    elif isinstance(body.get("error"), str):  # OAuth 2.0 token endpoint (RFC 6749 §5.2)
        entries.append(ApiError(code=body["error"], detail=_str(body.get("error_description"))))
    elif "code" in body or "message" in body or "detail" in body:
        entries.append(_entry(body))
    return entries, trace_id


def _entry(item: Mapping[str, Any]) -> ApiError:
    source = item.get("source")
    pointer = parameter = None
    if isinstance(source, dict):
        pointer = _str(source.get("pointer"))
        parameter = _str(source.get("parameter"))
    detail = _str(item.get("detail")) or _str(item.get("message")) or _str(item.get("title"))
    code = _str(item.get("code"))
    return ApiError(code=code, detail=detail, pointer=pointer, parameter=parameter)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


__all__ = [
    "REDACTED",
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "DeadlineError",
    "NotFoundError",
    "OrganisationUnknownError",
    "OutboxLostError",
    "PermissionDeniedError",
    "PreconditionError",
    "QontoError",
    "RateLimitedError",
    "ResponseTooLargeError",
    "SandboxBusyError",
    "ServerError",
    "StagingTokenError",
    "TransportError",
    "ValidationRejectedError",
    "error_class_for",
    "parse_error_body",
    "redact",
]


class OrganisationUnknownError(TransmitError):
    """Qonto would not say which organisation the credentials belong to (a 403 on
    `/v2/organization`, a 404, an answer without an id). The outbox is keyed by the
    organisation's id and by nothing else, so nothing is sent. CLI exit code 3 (CONFIG)."""


class OutboxLostError(TransmitError):
    """A state folder still holds stored uploads (`blobs/`) but its outbox is missing, empty or
    unreadable: the record of what was sent is gone, so the folder is refused rather than used
    as if nothing had been sent. CLI exit code 6 (STATE)."""
