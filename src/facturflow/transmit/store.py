"""Where the outbox lives: a state folder (SQLite, the default) or a PostgreSQL database
(`postgresql://...`), behind one interface, `OutboxStore`, the operations the send stage and
the `outbox`/`status` commands use.

    open_outbox(state, org)       the outbox of one organisation, whichever the backend
    organisations(state)          the organisations it holds items for
    check(state)                  `facturflow outbox check`

A state is a folder (str or Path) or a URL string; `is_database_url` tells them apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, Union

from . import outbox as _sqlite
from .outbox import CheckReport, Item, SourceRecord
from .outbox_pg import DEFAULT_LEASE_SECONDS, is_database_url

StateLocation = Union[str, "os.PathLike[str]"]


class OutboxStore(Protocol):
    """The outbox of one organisation: what the send stage records, step by step."""

    org: str
    shared: bool  # other processes may write it meanwhile (claims keep them apart)

    def close(self) -> None: ...
    def __enter__(self) -> OutboxStore: ...
    def __exit__(self, *exc: object) -> None: ...
    def deferred(self) -> AbstractContextManager[Any]: ...
    def sync(self) -> None: ...

    def lookup_source(self, source_sha: str, upload_format: str) -> SourceRecord | None: ...
    def record_rejected(self, source_sha: str, upload_format: str, path: str,
                        reason: str) -> None: ...
    def record_validated(self, *, source_sha: str, source_path: str, upload_format: str,
                         file_name: str, upload: bytes, invoice_number: str | None,
                         buyer_siren: str | None,
                         content: Mapping[str, str] | None = None) -> Item: ...

    def blob(self, item: Item) -> bytes: ...
    def blob_problem(self, item: Item) -> str | None: ...
    def rebuild_blob(self, item: Item) -> bytes: ...

    def get(self, upload_sha: str) -> Item | None: ...
    def items(self) -> list[Item]: ...
    def find(self, ref: str) -> list[Item]: ...
    def by_number(self, invoice_number: str) -> list[Item]: ...
    def pending_import(self) -> list[Item]: ...
    def pending_send(self) -> list[Item]: ...

    def claim(self, upload_shas: Sequence[str]) -> dict[str, Item]: ...
    def mark_importing(self, upload_shas: Sequence[str]) -> None: ...
    def mark_imported(self, invoice_ids: dict[str, str]) -> None: ...
    def mark_adopted(self, upload_sha: str, invoice_id: str, *, sent: bool) -> None: ...
    def mark_sending(self, upload_sha: str) -> None: ...
    def mark_sent(self, upload_sha: str) -> None: ...
    def mark_failed(self, upload_shas: Sequence[str], reason: str) -> None: ...
    def record_status(self, upload_sha: str, einvoicing_status: str | None,
                      events: Sequence[dict[str, Any]]) -> None: ...
    def history(self, upload_sha: str) -> list[tuple[float, str, str | None]]: ...
    def forget(self, upload_sha: str) -> None: ...
    def reset_failed(self, upload_sha: str) -> None: ...


def open_outbox(state: StateLocation, org: str, *, lock: bool = True,
                lease_seconds: float = DEFAULT_LEASE_SECONDS) -> OutboxStore:
    """The outbox of `org` at `state`: a folder's SQLite outbox (an exclusive lock unless
    `lock=False`), or a PostgreSQL one shared with other senders (`lease_seconds`: how long a
    dead sender's claim on an invoice holds it before another sender takes it over)."""
    if is_database_url(state):
        from .outbox_pg import PgOutbox

        return PgOutbox(str(state), org, lock=lock, lease_seconds=lease_seconds)
    return _sqlite.Outbox(state, org, lock=lock)


def organisations(state: StateLocation) -> list[str]:
    if is_database_url(state):
        from . import outbox_pg

        return outbox_pg.organisations(str(state))
    return _sqlite.organisations(state)


def refuse_lost_outbox(state: StateLocation) -> None:
    """A folder's check for stored uploads without their outbox; nothing for a database (its
    uploads are in the same transaction as their rows)."""
    if not is_database_url(state):
        _sqlite.refuse_lost_outbox(Path(state))


def check(state: StateLocation) -> CheckReport:
    if is_database_url(state):
        from .outbox_pg import check_database

        return check_database(str(state))
    return _sqlite.check_state(state)


def describe(state: StateLocation) -> str:
    """The state for messages: the folder, or the database without its password."""
    if is_database_url(state):
        from .outbox_pg import describe as where

        return where(str(state))
    return str(state)


__all__ = ["OutboxStore", "StateLocation", "check", "describe", "is_database_url",
           "open_outbox", "organisations", "refuse_lost_outbox"]
