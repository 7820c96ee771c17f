"""The clients' shared core: auth headers, requests, answers read, errors, retry policy."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import (
    AuthenticationError,
    DeadlineError,
    QontoError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    StagingTokenError,
    TransportError,
    error_class_for,
    parse_error_body,
    redact,
)
from .auth import TokenState, _OAuth, load_tokens
from .config import PRODUCTION_URL, QontoConfig
from .ops import T, _Op, _raw
from .transport import _DEADLINE_SLACK, RateLimiter, _BodyReader, retry_after


class _Core(_OAuth):
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
