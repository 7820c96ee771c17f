"""Endpoints: each API operation described once (method, URL, parser), for both clients."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import httpx

from ..errors import (
    ApiError,
    ServerError,
    ValidationRejectedError,
)
from .config import (
    _MULTIPART_PART_OVERHEAD,
    MAX_IMPORT_FILE_BYTES,
    MAX_IMPORT_FILES,
    MAX_IMPORT_TOTAL_BYTES,
    check_url,
)
from .values import ClientInvoice, EInvoicingSettings, ImportedInvoice, ServerClock, UploadFile

if TYPE_CHECKING:
    from .core import _Core


T = TypeVar("T")
AuthKind = Literal["business", "onboarding", "none"]


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


def client_matches(client: Mapping[str, Any], siren: str) -> bool:
    """True when a Qonto client is the company with this SIREN: its `siren`, the first part of
    its `e_invoicing_address` (siren, siren_siret, ...) or the SIREN inside a French VAT number."""
    address = str(client.get("e_invoicing_address") or "")
    vat = str(client.get("vat_number") or "").replace(" ", "").upper()
    return (str(client.get("siren") or "") == siren or address.split("_")[0] == siren
            or (vat.startswith("FR") and vat[4:] == siren))
