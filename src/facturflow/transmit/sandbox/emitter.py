"""The lifecycle webhooks: POST a signed event on each change of a sent invoice, with retries."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from .wire import _iso

if TYPE_CHECKING:
    from .core import Sandbox


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

        from ...webhooks import SIGNATURE_HEADER, sign

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
