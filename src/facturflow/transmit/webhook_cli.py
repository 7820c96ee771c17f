"""`facturflow webhook serve`: a small HTTP receiver for Qonto's webhooks.

    facturflow webhook serve --port 8765 --secret-env QONTO_WEBHOOK_SECRET

Each POST is verified (facturflow.webhooks: signature, age), then, under one lock:

- an event id already recorded is answered 200 `{"status": "duplicate"}` and does nothing;
- for a `v1/client-invoices` event, the client invoice is fetched again (GET
  /v2/client_invoices/{id}: the payload carries einvoicing_status, not the lifecycle events)
  and its status and events are written to the outbox of the state folder, when the outbox
  knows the invoice (an invoice sent by something else is acknowledged and left alone);
- with --forward-jsonl the event is printed as one JSON line on stdout; with --exec the
  command runs with that line on stdin (no shell; bounded by --exec-timeout);
- only then is the event id recorded (a SQLite file in the state folder, fsynced) and 200
  answered. Anything that fails on the way (the outbox locked by a running `send` for more
  than a few seconds, Qonto unreachable, the command failing) is answered 503 and nothing is
  recorded, so that the sender's retry does it again: the outbox update is idempotent, the
  command may see an event more than once (at-least-once), never an unverified one.

Answers: 200 recorded or duplicate; 400 not an event; 401 bad or missing signature, or an event
signed too long ago; 405 not a POST; 411 no Content-Length; 413 body over --max-body; 503 as
above (with Retry-After). Errors are JSON: {"error": {"code", "message"}}.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

from .. import exitcodes
from ..clitypes import FiniteFloatRange
from ..errors import TransmitError
from ..lifecycle import describe_status
from ..webhooks import (
    CLIENT_INVOICES,
    DEFAULT_SIGNED_PAYLOAD,
    DEFAULT_TOLERANCE,
    DurableReplayStore,
    WebhookError,
    WebhookEvent,
    WebhookFormatError,
    parse_event,
    signed_bytes,
    verify_signature,
)
from .outbox import Outbox, OutboxBusyError
from .qonto import QontoClient

MAX_BODY = 1024 * 1024
OUTBOX_WAIT = 3.0  # seconds to wait for an outbox a `send` holds, before answering 503
STORE_NAME = "webhook-events.sqlite3"


@dataclass
class ReceiverConfig:
    """What `WebhookReceiver` needs; `client` re-fetches invoices (None: no re-fetch)."""

    secret: str
    state_dir: Path
    client: QontoClient | None = None
    host: str = "127.0.0.1"
    port: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    signed_payload: str = DEFAULT_SIGNED_PAYLOAD
    max_body: int = MAX_BODY
    forward: Callable[[str], None] | None = None  # gets each event's JSON line
    exec_argv: list[str] = field(default_factory=list)
    exec_timeout: float = 30.0
    read_timeout: float = 10.0


class EffectError(Exception):
    """The event could not be processed now; the sender should retry."""


class WebhookReceiver:
    """The receiver; a context manager like the sandbox (`with WebhookReceiver(cfg) as r:`)."""

    def __init__(self, config: ReceiverConfig) -> None:
        signed_bytes(0, b"", config.signed_payload)  # a bad template fails here, not per event
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = DurableReplayStore(config.state_dir / STORE_NAME)
        self._lock = threading.Lock()
        self._org: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.counts = {"recorded": 0, "duplicate": 0, "refused": 0, "failed": 0}

    def start(self) -> WebhookReceiver:
        handler = type("_BoundHandler", (_Handler,), {"receiver": self})
        server: type[ThreadingHTTPServer] = ThreadingHTTPServer
        if ":" in self.config.host:  # an IPv6 address (::1): the default family is IPv4
            server = type("_Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self._server = server((self.config.host, self.config.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="facturflow-webhooks")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.store.close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "receiver not started"
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    # -- one event ------------------------------------------------------------------------
    def handle(self, event: WebhookEvent) -> tuple[str, dict[str, Any]]:
        """Process a verified event once: ("duplicate" | "recorded", details)."""
        with self._lock:  # one event at a time: two copies of one event cannot both pass
            if self.store.seen(event.id):
                self.counts["duplicate"] += 1
                return "duplicate", {}
            details = self._effect(event)
            line = json.dumps({"event": event.as_dict(), **details}, ensure_ascii=False)
            if self.config.forward is not None:
                self.config.forward(line)
            if self.config.exec_argv:
                self._run_command(line)
            self.store.remember(event.id, event.timestamp)
            self.counts["recorded"] += 1
            return "recorded", details

    def _organization(self) -> str | None:
        if self._org is None and self.config.client is not None:
            from .pipeline import _organization

            self._org = _organization(self.config.client)
        return self._org

    def _effect(self, event: WebhookEvent) -> dict[str, Any]:
        client = self.config.client
        if event.type != CLIENT_INVOICES or event.invoice_id is None or client is None:
            return {"outbox": None}
        try:
            org = self._organization()
            if event.organization_id and org and event.organization_id != org:
                return {"outbox": None, "note": "another organisation's event"}
            invoice = client.get_client_invoice(event.invoice_id)
        except TransmitError as exc:
            raise EffectError(f"cannot fetch client invoice {event.invoice_id}: "
                              f"{exc.message}") from exc
        except ValueError:  # path characters: no retry will make it an invoice
            raise WebhookFormatError(f"the event's invoice id {event.invoice_id!r} is not a "
                                     "Qonto id") from None
        events = [e.as_dict() for e in invoice.lifecycle_events]
        latest = invoice.latest_event
        details: dict[str, Any] = {
            "invoice": {"id": invoice.id, "einvoicing_status": invoice.einvoicing_status,
                        "lifecycle_events": events,
                        "status_text": describe_status(
                            latest.as_dict() if latest is not None else
                            invoice.einvoicing_status, "fr")},
            "outbox": [],
        }
        assert org is not None
        with self._outbox(org) as outbox:
            for item in outbox.find(event.invoice_id):
                if (item.einvoicing_status, item.events) != (invoice.einvoicing_status,
                                                             tuple(events)):
                    outbox.record_status(item.upload_sha256, invoice.einvoicing_status, events)
                details["outbox"].append(item.source_path)
        return details

    @contextlib.contextmanager
    def _outbox(self, org: str) -> Iterator[Outbox]:
        deadline = time.monotonic() + OUTBOX_WAIT
        while True:
            try:
                outbox = Outbox(self.config.state_dir, org)
                break
            except OutboxBusyError as exc:
                if time.monotonic() >= deadline:
                    raise EffectError(f"{exc.message} (retry later)") from exc
                time.sleep(0.1)
        with outbox:  # closing syncs: the update is on disk before the answer
            yield outbox

    def _run_command(self, line: str) -> None:
        argv = self.config.exec_argv
        try:
            done = subprocess.run(argv, input=line.encode() + b"\n", stdout=sys.stderr,
                                  timeout=self.config.exec_timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise EffectError(f"--exec {argv[0]} ran longer than "
                              f"{self.config.exec_timeout:g} s") from exc
        except OSError as exc:
            raise EffectError(f"--exec {argv[0]}: {exc.strerror or exc}") from exc
        if done.returncode != 0:
            raise EffectError(f"--exec {argv[0]} exited with {done.returncode}")


class _Handler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver
    server_version = "facturflow-webhooks"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the receiver's output is the events

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.receiver.config.read_timeout)

    def _answer(self, status: int, body: dict[str, Any], **headers: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, **headers: str) -> None:
        self.receiver.counts["refused" if status < 500 else "failed"] += 1
        self.close_connection = True
        self._answer(status, {"error": {"code": code, "message": message}}, **headers)

    def do_GET(self) -> None:
        self._error(405, "method_not_allowed", "POST webhook events here")

    do_PUT = do_DELETE = do_PATCH = do_GET

    def do_POST(self) -> None:
        config = self.receiver.config
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self._error(411, "length_required", "a Content-Length header is required")
            return
        if int(length) > config.max_body:
            self._error(413, "too_large", f"the body exceeds {config.max_body} bytes")
            return
        try:
            body = self.rfile.read(int(length))
        except OSError:
            self.close_connection = True
            return
        try:
            timestamp = verify_signature(self.headers, body, config.secret,
                                         tolerance=config.tolerance,
                                         signed_payload=config.signed_payload)
            event = parse_event(body, timestamp)
        except WebhookFormatError as exc:
            self._error(400, "not_an_event", exc.message)
            return
        except WebhookError as exc:
            self._error(401, "bad_signature", exc.message)
            return
        try:
            status, details = self.receiver.handle(event)
        except WebhookFormatError as exc:
            self._error(400, "not_an_event", exc.message)
            return
        except EffectError as exc:
            self._error(503, "retry_later", str(exc), Retry_After="2")
            return
        except Exception as exc:  # answered: never a handler thread dying silently
            self._error(500, "internal", f"{type(exc).__name__}: {exc}")
            return
        self._answer(200, {"status": status, "event_id": event.id, **(
            {"outbox": details.get("outbox")} if details else {})})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group("webhook")
def webhook_group() -> None:
    """Receive Qonto's webhooks (see `facturflow webhook serve --help`)."""


@webhook_group.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), required=True,
              help="Port to listen on (0: any free one, printed at start).")
@click.option("--secret-env", required=True, metavar="NAME",
              help="Name of the environment variable holding the webhook secret (never the "
                   "secret itself on the command line).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; loopback unless --allow-remote.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host (put TLS in front: the receiver speaks HTTP).")
@click.option("--state", "state", type=click.Path(path_type=Path), default=None,
              help="State folder (outbox, seen event ids); default $FACTURFLOW_STATE, else "
                   "the user's state folder.")
@click.option("--forward-jsonl", is_flag=True,
              help="Print each new event as one JSON line on stdout.")
@click.option("--exec", "exec_cmd", default=None, metavar="CMD",
              help="Run CMD (split like a shell would, but run without one) per new event, "
                   "with its JSON line on stdin; a failure makes the sender retry.")
@click.option("--exec-timeout", type=FiniteFloatRange(0.1, 3600), default=30.0,
              show_default=True, help="Seconds --exec may run.")
@click.option("--tolerance", type=FiniteFloatRange(-1, 7 * 24 * 3600), default=DEFAULT_TOLERANCE,
              show_default=True, help="Refuse events signed longer ago than this (seconds; "
              "-1: no age check).")
@click.option("--signed-payload", default=DEFAULT_SIGNED_PAYLOAD, show_default=True,
              help="What the signature covers: a template with {t} and {body}.")
@click.option("--max-body", type=click.IntRange(1, 64 * 1024 * 1024), default=MAX_BODY,
              show_default=True, help="Largest body accepted, in bytes.")
def serve_command(port: int, secret_env: str, host: str, allow_remote: bool,
                  state: Path | None, forward_jsonl: bool, exec_cmd: str | None,
                  exec_timeout: float, tolerance: float, signed_payload: str,
                  max_body: int) -> None:
    """Receive, verify and record Qonto's webhook events until Ctrl-C.

    Needs the QONTO_* settings (the invoice of each event is fetched again). Exit codes: 0
    stopped (Ctrl-C, SIGTERM); 2 usage (a non-loopback --host without --allow-remote, a port
    in use, a bad --exec (or one naming no program) or --signed-payload); 3 configuration
    (the secret variable unset or empty, no QONTO_* settings or a malformed one, credentials
    refused); 4 Qonto unreachable at start; 6 the state folder unusable.
    """
    from .cli import classify_error, command_errors, configured_client, emit_error, state_dir

    if not allow_remote and not _is_loopback(host):
        raise click.UsageError(f"--host {host} is not a loopback address: add --allow-remote "
                               "to listen there (and put TLS in front)")
    secret = os.environ.get(secret_env, "")
    if not secret:
        click.echo(f"error: the environment variable {secret_env} (--secret-env) is unset or "
                   "empty: it must hold the webhook secret", err=True)
        sys.exit(exitcodes.CONFIG)
    try:
        argv = shlex.split(exec_cmd) if exec_cmd is not None else []
    except ValueError as exc:
        raise click.UsageError(f"--exec {exec_cmd!r}: {exc}") from None
    if exec_cmd is not None and not argv:
        raise click.UsageError("--exec is empty")
    if argv and shutil.which(argv[0]) is None:  # else every event answered 503, for ever
        raise click.UsageError(f"--exec {argv[0]}: no such program (or not executable)")
    try:
        signed_bytes(0, b"", signed_payload)
    except ValueError as exc:
        raise click.UsageError(f"--signed-payload: {exc}") from None
    folder = state_dir(state)

    def forward(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    with command_errors("text", folder), configured_client(folder) as client:
        if client is None:
            click.echo("error: no Qonto configuration (QONTO_API_KEY, or QONTO_ACCESS_TOKEN/"
                       "REFRESH_TOKEN): the receiver fetches each event's invoice from Qonto",
                       err=True)
            sys.exit(exitcodes.CONFIG)
        config = ReceiverConfig(secret=secret, state_dir=folder, client=client, host=host,
                                port=port, tolerance=tolerance, signed_payload=signed_payload,
                                max_body=max_body, forward=forward if forward_jsonl else None,
                                exec_argv=argv, exec_timeout=exec_timeout)
        try:
            receiver = WebhookReceiver(config)
            receiver._organization()  # credentials and organisation checked before serving
        except (TransmitError, OSError, sqlite3.Error) as exc:
            emit_error(classify_error(exc, folder), "text")
        try:
            receiver.start()
        except OSError as exc:
            receiver.stop()
            click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}",
                       err=True)
            sys.exit(exitcodes.USAGE)
        stop = threading.Event()
        # Before the line that says it listens: a SIGTERM from then on stops it cleanly (exit
        # 0), not as the Ctrl-C of a command still starting (exit 130).
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            click.echo(f"webhook receiver listening on {receiver.url} (state in {folder})",
                       err=True)
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            receiver.stop()
        c = receiver.counts
        click.echo(f"stopped: {c['recorded']} event(s) recorded, {c['duplicate']} duplicate(s), "
                   f"{c['refused']} refused, {c['failed']} to be retried", err=True)


__all__ = ["ReceiverConfig", "WebhookReceiver", "serve_command", "webhook_group"]
