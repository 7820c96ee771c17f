"""What the SQLite and PostgreSQL outboxes do the same way: the transitions and queries written
in terms of each backend's own `_set`, `_tx`, `_log`, `_rows`, `get` and `items`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .records import Item, State


class OutboxCommon:
    """Mixin of `Outbox` (SQLite) and `PgOutbox` (PostgreSQL)."""

    #: The backend's query parameter marker ("?" for sqlite3, "%s" for psycopg).
    _PARAM: ClassVar[str]
    #: The history column that orders an item's history as written.
    _HISTORY_ORDER: ClassVar[str]

    if TYPE_CHECKING:
        org: str

        def _tx(self) -> contextlib.AbstractContextManager[Any]: ...

        def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]: ...

        def _log(self, db: Any, upload_sha: str, state: str, detail: str | None) -> None: ...

        def _set(self, upload_shas: Sequence[str], state: State, detail: str | None = None,
                 **columns: Any) -> None: ...

        def get(self, upload_sha: str) -> Item | None: ...

        def items(self) -> list[Item]: ...

    def pending_import(self) -> list[Item]:
        return [i for i in self.items() if i.invoice_id is None and i.state != "sent"]

    def pending_send(self) -> list[Item]:
        return [i for i in self.items() if i.invoice_id is not None and i.state != "sent"]

    def mark_importing(self, upload_shas: Sequence[str]) -> None:
        self._set(upload_shas, "importing", error=None)

    def mark_sending(self, upload_sha: str) -> None:
        self._set([upload_sha], "sending", error=None)

    def mark_sent(self, upload_sha: str) -> None:
        self._set([upload_sha], "sent", sent_at=time.time(), error=None)

    def mark_failed(self, upload_shas: Sequence[str], reason: str) -> None:
        self._set(upload_shas, "failed", reason, error=reason)

    def record_status(self, upload_sha: str, einvoicing_status: str | None,
                      events: Sequence[dict[str, Any]]) -> None:
        p = self._PARAM
        with self._tx() as db:
            db.execute(f"UPDATE items SET einvoicing_status={p}, events={p}, updated_at={p} "
                       f"WHERE org={p} AND upload_sha256={p}",
                       (einvoicing_status, json.dumps(list(events)), time.time(), self.org,
                        upload_sha))
            self._log(db, upload_sha, f"status:{einvoicing_status}", None)

    def history(self, upload_sha: str) -> list[tuple[float, str, str | None]]:
        p = self._PARAM
        rows = self._rows(f"SELECT at, state, detail FROM history WHERE org={p} AND "
                          f"upload_sha256={p} ORDER BY {self._HISTORY_ORDER}",
                          (self.org, upload_sha))
        return [(r["at"], r["state"], r["detail"]) for r in rows]

    def reset_failed(self, upload_sha: str) -> None:
        """Put a failed item back where the next send takes it up: `imported` when Qonto gave
        it an id, else `validated` (the error stays in its history)."""
        item = self.get(upload_sha)
        if item is None or item.state != "failed":
            return
        state: State = "imported" if item.invoice_id else "validated"
        self._set([upload_sha], state, "retry", error=None)
