"""`Sandbox`: the emulated Qonto organisation (server lifecycle, state, clock, test hooks)."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..fields import read_invoice_fields
from ..qonto import check_api_key
from .config import ALL_SCOPES, OUTCOME_STATUS, OUTCOMES, SandboxConfig
from .emitter import _WebhookEmitter
from .faults import FAULT_KINDS, MAX_CLOCK_MOVE, MAX_FORCED_FAULTS, FaultPlan, _count, _finite
from .handler import _Handler
from .state import _lock_folder, _State
from .wire import _iso, _money, _sniff, _uuid7


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


def sandbox(state_dir: str | os.PathLike[str] | None = None, **options: Any) -> Sandbox:
    """A Sandbox to use as a context manager: `with facturflow.sandbox() as sb: sb.base_url`."""
    config = SandboxConfig(state_dir=Path(state_dir) if state_dir is not None else None)
    return Sandbox(config, **options)
