"""The values the clients take and return: upload files, invoices, settings, clock."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class UploadFile:
    """One file of a bulk import."""

    file_name: str
    data: bytes = field(repr=False)
    content_type: str = "application/pdf"

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> UploadFile:
        p = Path(path)
        return cls(p.name, p.read_bytes(), content_type_for(p.name))


def content_type_for(name: str) -> str:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {
        "pdf": "application/pdf",
        "xml": "application/xml",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
    }.get(suffix, "application/octet-stream")


@dataclass(frozen=True)
class ImportedInvoice:
    """One entry of a bulk import answer: Qonto's id for the invoice made from `file_name`."""

    invoice_id: str
    file_name: str


@dataclass(frozen=True)
class EInvoicingSettings:
    sending_status: str
    receiving_status: str

    @property
    def sending_enabled(self) -> bool:
        return self.sending_status == "enabled"


@dataclass(frozen=True)
class LifecycleEvent:
    status_code: int
    reason: str | None
    reason_message: str | None
    timestamp: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status_code": self.status_code,
            "reason": self.reason,
            "reason_message": self.reason_message,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class ClientInvoice:
    """The fields of a client invoice the pipeline needs; `raw` keeps the rest."""

    id: str
    number: str | None
    status: str | None
    einvoicing_status: str | None
    lifecycle_events: tuple[LifecycleEvent, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def latest_event(self) -> LifecycleEvent | None:
        # Ordered by timestamp, not array order (API.md §9).
        events = sorted(self.lifecycle_events, key=lambda e: (e.timestamp or "", e.status_code))
        return events[-1] if events else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClientInvoice:
        events = []
        for item in data.get("einvoicing_lifecycle_events") or ():
            if not isinstance(item, dict):
                continue
            try:
                code = int(item["status_code"])  # int or string (API.md §10 Q8)
            except (KeyError, TypeError, ValueError):
                continue
            events.append(
                LifecycleEvent(code, item.get("reason"), item.get("reason_message"),
                               item.get("timestamp"))
            )
        return cls(
            id=str(data.get("id")),
            number=data.get("number") or data.get("invoice_number"),
            status=data.get("status"),
            einvoicing_status=data.get("einvoicing_status"),
            lifecycle_events=tuple(events),
            raw=data,
        )


@dataclass(frozen=True)
class ServerClock:
    """The server's `Date` header next to the local clock when the answer arrived."""

    server: float | None  # seconds since the epoch, None when the header is absent or bad
    local: float

    @property
    def skew(self) -> float | None:
        """Local minus server, in seconds (positive: the local clock is ahead)."""
        return None if self.server is None else self.local - self.server
