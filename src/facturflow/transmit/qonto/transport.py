"""Transport: the rate limiter, per-attempt deadlines on the sockets, capped body reads."""

from __future__ import annotations

import contextvars
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx

from ..errors import (
    ResponseTooLargeError,
)

if TYPE_CHECKING:
    from .config import QontoConfig
    from .core import _Core
    from .ops import _Op


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


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _timeout(config: QontoConfig) -> httpx.Timeout:
    return httpx.Timeout(config.timeout, connect=config.connect_timeout)
