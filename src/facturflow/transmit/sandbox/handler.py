"""HTTP plumbing: route table, request reading, injected faults, auth, idempotency, answers."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .endpoints import _ApiRoutes
from .hooks import _HookRoutes
from .wire import _fail, _Reply, _same

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


class _Handler(_ApiRoutes, _HookRoutes):
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
