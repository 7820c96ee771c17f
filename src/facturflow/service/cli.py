"""`facturflow serve`: the HTTP service on uvicorn, stopped gracefully by SIGTERM.

Exit codes: 0 stopped by SIGTERM (after finishing the requests in flight); 2 a usage error (a bad
option or rule pack, an address that cannot be bound); 3 a bind off loopback without
FACTURFLOW_SERVE_TOKEN; 4 the service could not start; 130 stopped by Ctrl-C (SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from .. import exitcodes
from ..clitypes import FiniteFloatRange
from ..inputs import cli_limits, parse_size
from .auth import TOKEN_ENV, is_loopback

# Seconds a connection may take to send a request's head (a client sends it in one packet);
# at most --body-timeout.
HEADER_TIMEOUT = 10.0


def _fail(code: int, message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _close_inherited_sockets() -> None:
    """In a forked worker: close the service's TCP sockets (the listening one, the clients').

    A worker holding a copy would keep the port accepting after the service closed it, and a
    client's connection open after the service answered and closed it. The worker's own pipe
    to the service is a Unix socket pair, which stays.
    """
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            continue  # not a socket (or already closed)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.close()
        else:
            sock.detach()


class _JsonLog(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import datetime as dt

        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "event": "server", "level": record.levelname.lower(), "message": record.getMessage(),
        }
        return json.dumps(line, ensure_ascii=True)  # one line whatever splits it (app.log)


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs a bearer token in "
                   f"{TOKEN_ENV} (never on the command line).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one (the log's 'listening' line says "
                   "which).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes kept warm for validation (default: all cores).")
@click.option("--queue", type=click.IntRange(min=1), default=64, show_default=True,
              help="Requests that may wait for a worker; one more gets 503 with Retry-After.")
@click.option("--request-timeout", type=FiniteFloatRange(min=0.1, max=86_400), default=30.0,
              show_default=True,
              help="Seconds a worker may spend on one request; over it the worker is replaced "
                   "and the caller gets 504.")
@click.option("--body-timeout", type=FiniteFloatRange(min=0.1, max=86_400), default=30.0,
              show_default=True,
              help="Seconds a client may take to send a request body; over it the request gets "
                   "408 and its connection is closed (a slow client never holds a place long).")
@click.option("--max-size", callback=parse_size, default=None, metavar="SIZE",
              help="Largest request body, e.g. 20MB (default: 100MB, as validate); larger "
                   "bodies get 413 before they are read.")
@click.option("--max-nodes", type=click.IntRange(min=1), default=None, metavar="N",
              help="Most markup items an XML input may have (default: 1000000).")
@click.option("--rule-pack", "rule_packs", multiple=True, type=click.Path(path_type=Path),
              help="A rule pack folder (with rulepack.toml), applied to every request as "
                   "`validate --rule-pack` applies it; repeatable.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path), default=None,
              metavar="DIR",
              help="Keep verdicts in DIR, as `validate --cache` (default: "
                   "$FACTURFLOW_VERDICT_CACHE, else the user cache folder): an invoice validated "
                   "before is answered from it without a worker (X-Facturflow-Cached: true).")
@click.option("--no-cache", is_flag=True,
              help="Validate every request, neither reading nor writing the verdict cache.")
def serve_command(
    host: str,
    port: int,
    jobs: int | None,
    queue: int,
    request_timeout: float,
    body_timeout: float,
    max_size: int | None,
    max_nodes: int | None,
    rule_packs: tuple[Path, ...],
    cache_dir: Path | None,
    no_cache: bool,
) -> None:
    """Serve validation, detection, reading and conversion over HTTP (see /openapi.json).

    Loopback only unless --host says otherwise; then every request but /healthz and /readyz
    needs 'Authorization: Bearer TOKEN', TOKEN taken from FACTURFLOW_SERVE_TOKEN. SIGTERM stops
    accepting connections, finishes the requests in flight and exits 0. Logs are JSON lines on
    standard error (no invoice content, no token, no query strings).
    """
    from ..errors import RulePackError
    from ..rules import load_rule_pack
    from ..validation import default_jobs

    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        _fail(exitcodes.CONFIG, f"--host {host} is not loopback: set {TOKEN_ENV} to the bearer "
                                "token clients must send")
    try:
        packs = [load_rule_pack(folder) for folder in rule_packs]
    except RulePackError as exc:
        _fail(exitcodes.USAGE, f"--rule-pack: {exc}")
    # The command line's limits; their messages keep the library's wording, as an HTTP caller
    # cannot pass the operator's options.
    limits = replace(cli_limits(max_size, max_nodes), options=())
    try:
        import uvicorn

        from .app import Settings, create_app, log
    except ImportError as exc:
        _fail(exitcodes.CONFIG, f"facturflow serve needs the 'serve' extra ({exc.name} is "
                                "missing): pip install 'facturflow[serve]'")
    try:
        sock = _bind(host, port)
    except OSError as exc:
        _fail(exitcodes.USAGE, f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    from ..cache_cli import verdict_cache

    settings = Settings(
        jobs=jobs or default_jobs(), queue=queue, request_timeout=request_timeout,
        body_timeout=body_timeout, limits=limits, packs=packs, token=token,
        cache=verdict_cache(cache_dir, no_cache),
    )
    os.register_at_fork(after_in_child=_close_inherited_sockets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLog())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    config = uvicorn.Config(
        create_app(settings), log_config=None, access_log=False, lifespan="on",
        http=_protocol(min(HEADER_TIMEOUT, body_timeout)),
        server_header=False, timeout_graceful_shutdown=int(request_timeout) + 10,
    )
    address = sock.getsockname()
    shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    server = _server(config, f"http://{shown}:{address[1]}", settings)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except SystemExit:
        raise
    finally:
        sock.close()
    if not server.started:
        _fail(exitcodes.SERVICE, "the service could not start (see the log above)")
    stopped_by = server.stopped_by
    log("stopped", signal=signal.Signals(stopped_by).name if stopped_by else None)
    sys.exit(exitcodes.INTERRUPTED if stopped_by == signal.SIGINT else exitcodes.OK)


def _protocol(header_timeout: float) -> Any:
    """uvicorn's h11 protocol, with two changes: a request it cannot parse (a header over its
    size limit, no HTTP at all) is answered in JSON like every other error of the service, not
    in uvicorn's plain text; and a connection that has not sent a whole request head within
    `header_timeout` seconds of opening (or of the first byte of a later request) gets 408 and
    is closed.
    uvicorn times out only idle keep-alive connections, and any byte resets that: a client
    trickling its headers (slowloris) or sending nothing at all held a connection for ever."""

    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    overdue = json.dumps({
        "error": "RequestTimeout", "exit_code": exitcodes.USAGE,
        "message": f"the request headers did not arrive within {header_timeout:g} s",
    }).encode()

    class JsonErrors(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            # The first byte of a request starts its clock (an idle keep-alive connection is
            # uvicorn's to close); later bytes do not reset it.
            if self._head_timer is None and self.conn.their_state is h11.IDLE:
                self._arm()
            super().data_received(data)

        def on_response_complete(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().on_response_complete()

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(header_timeout, self._head_overdue)

        def _head_overdue(self) -> None:
            self._head_timer = None
            waiting_for_head = self.conn.their_state is h11.IDLE and (
                self.cycle is None or self.cycle.response_complete)
            if self.transport.is_closing() or not waiting_for_head:
                return
            # Written as bytes: h11 cannot answer a request it has not seen.
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(overdue)}\r\n".encode()
                + b"connection: close\r\n\r\n" + overdue)
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            body = json.dumps({"error": "BadRequest", "message": f"{msg.rstrip('.')}: not a "
                               "well-formed HTTP/1.1 request (or its headers are too large)",
                               "exit_code": exitcodes.USAGE}).encode()
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                          h11.Data(data=body), h11.EndOfMessage()):
                output = self.conn.send(event)
                if output:
                    self.transport.write(output)
            self.transport.close()

    return JsonErrors


def _server(config: Any, url: str, settings: Any) -> Any:
    """uvicorn's Server, logging where it listens, and leaving SIGTERM/SIGINT as a graceful
    stop (uvicorn re-raises the signal after stopping, which would end the process with it)."""
    import uvicorn

    from .app import log

    class Server(uvicorn.Server):
        stopped_by: int | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                log("listening", url=url, jobs=settings.jobs, queue=settings.queue,
                    request_timeout=settings.request_timeout,
                    max_bytes=settings.limits.max_bytes, auth=settings.token is not None,
                    verdict_cache=str(settings.cache.folder) if settings.cache else None)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)
                self.stopped_by = self._captured_signals[0] if self._captured_signals else None

    return Server(config)
