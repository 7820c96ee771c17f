"""`QontoClient` and `AsyncQontoClient`: the same endpoints, each waiting its own way."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from ..errors import (
    AuthenticationError,
    DeadlineError,
    QontoError,
    ResponseTooLargeError,
    ServerError,
    StagingTokenError,
)
from .config import QontoConfig, log
from .core import _Core
from .ops import T, _Op, _Ops, _pages_done, client_matches
from .transport import _DEADLINE, _deadline_transport, _timeout
from .values import ClientInvoice, EInvoicingSettings, ImportedInvoice, ServerClock, UploadFile


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
