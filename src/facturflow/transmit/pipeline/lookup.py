"""Dedup: what "the same invoice" means, and which numbers Qonto already holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    QontoError,
)
from ..fields import read_invoice_fields
from ..outbox import Item
from ..qonto import (
    QontoClient,
)

# What "the same invoice" means when two versions carry one invoice number: the fields that
# both the invoice and Qonto's record of it (GET /v2/client_invoices, API.md §6.1) carry.
# Only fields known on both sides are compared; none known counts as the same invoice, since
# importing it again could only make a duplicate.
# The document type (BT-3) too: a credit note is never "the same invoice" as the invoice that
# carries its number, even with the same date and amounts (adopting one for the other would
# report a credit note sent that never left). Qonto's record has no type; its stored file does.
CONTENT_LABELS = {"issue_date": "issue date", "currency": "currency",
                  "total": "total with VAT", "vat": "VAT total", "type": "document type (BT-3)"}


def content_of(fields: Mapping[str, Any]) -> dict[str, str]:
    """The compared fields of an invoice (document_fields), normalised."""
    out: dict[str, str] = {}
    if isinstance(fields.get("issue_date"), str):
        out["issue_date"] = fields["issue_date"]
    if isinstance(fields.get("currency"), str) and fields["currency"].strip():
        out["currency"] = fields["currency"].strip().upper()
    for key in ("total", "vat"):
        amount = _amount(fields.get(key))
        if amount is not None:
            out[key] = amount
    if isinstance(fields.get("type_code"), str) and fields["type_code"].strip():
        out["type"] = fields["type_code"].strip()
    return out


def qonto_content(invoice: Mapping[str, Any]) -> dict[str, str]:
    """The compared fields of a client invoice as Qonto returns it."""
    out: dict[str, str] = {}
    issue = invoice.get("issue_date")
    if isinstance(issue, str) and len(issue) >= 10:
        out["issue_date"] = issue[:10]
    currency = invoice.get("currency")
    if isinstance(currency, str) and currency.strip():
        out["currency"] = currency.strip().upper()
    for key, name in (("total", "total_amount"), ("vat", "vat_amount")):
        cents = invoice.get(f"{name}_cents")
        money = invoice.get(name)
        value = money.get("value") if isinstance(money, dict) else money
        amount = _amount(value)
        if amount is None and isinstance(cents, int) and not isinstance(cents, bool):
            amount = _amount(str(Decimal(cents) / 100))
        if amount is not None:
            out[key] = amount
    return out


def _amount(value: object) -> str | None:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    try:
        return str(Decimal(str(value).strip()).quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError):
        return None


def _differences(mine: Mapping[str, str], theirs: Mapping[str, str], where: str) -> list[str]:
    return [f"{label} {mine[key]} here, {theirs[key]} {where}"
            for key, label in CONTENT_LABELS.items()
            if key in mine and key in theirs and mine[key] != theirs[key]]


NEVER_TWICE = ("facturflow never sends two documents under one number (an invoice and a credit "
               "note included): a credit note takes a number of its own; to correct an invoice "
               "already issued, issue a credit note for it and a new invoice under a new number")


def _twin_refusal(number: str, upload_sha: str, content: Mapping[str, str],
                  twins: Iterable[Item], claimed: set[str]) -> str | None:
    """Why an invoice numbered `number` must not go out, given the outbox's items with that
    number (another item counts once it has a Qonto id or was admitted in this run)."""
    twin = next((o for o in twins if o.upload_sha256 != upload_sha
                 and (o.invoice_id is not None or o.upload_sha256 in claimed)), None)
    if twin is None:
        return None
    if twin.state == "sent":
        when = f"sent on {_when(twin.sent_at)} as Qonto invoice {twin.invoice_id}"
    elif twin.invoice_id is not None:
        when = f"imported as Qonto invoice {twin.invoice_id} (not sent yet)"
    else:
        when = "admitted earlier in this run"
    differs = _differences(content, twin.content_fields, "in the earlier version")
    if differs:
        return (f"invoice number {number} was already {when}, from {twin.source_path}, and this "
                f"file's content differs ({'; '.join(differs)}): {NEVER_TWICE}")
    return (f"invoice number {number} is already in the outbox from {twin.source_path}, {when} "
            "(same content in other bytes; not sent twice)")


def _unchecked(number: str, exc: QontoError) -> str:
    return (f"cannot ask Qonto whether invoice number {number} already exists, so it is not "
            f"imported (will retry on the next run): {exc.message}")


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "an unknown date"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _submitted(invoice: Mapping[str, Any]) -> bool:
    """Whether Qonto's record shows the invoice went to the network (API.md §6.2: `pending`,
    or no status, until it is deposited)."""
    status = invoice.get("einvoicing_status")
    events = invoice.get("einvoicing_lifecycle_events")
    return bool(events) or status not in (None, "", "pending")


class _QontoNumbers:
    """The organisation's client invoices at Qonto, by number: listed once per run, lazily (only
    when an invoice with no record must be imported), paged, oldest first; then, around each
    import, only what was created since (`arrived`, `settle`: two senders at once).

    Qonto's list has no filter by number (API.md §5.6): it is listed from `created_at_from` =
    now - `days`, imported invoices included (no `exclude_imported`), and widened further back
    when an invoice's issue date is older than what was listed (a second listing, up to where
    the first began): no invoice is imported before it is issued, so what could clash with it
    is listed. Qonto's idempotent import (same bytes, same id) is no help here: a converted
    file's bytes may differ from one conversion to the next.
    """

    MARGIN = timedelta(days=2)  # time zones and clocks between the issue date and Qonto's
    # Nothing was created at Qonto's API before this: an issue date older than it (year 1 is a
    # valid EN 16931 date without the French rules) lists from here, not from before datetime's
    # range (OverflowError) or from a date the API may refuse (one failed listing per run).
    FLOOR = datetime(2000, 1, 1, tzinfo=UTC)

    # Right before each import, what was created at Qonto since the newest invoice listed, minus
    # this (commit or replica lag: an invoice may show up in the list after a later one).
    LAG = timedelta(minutes=1)

    def __init__(self, client: QontoClient, days: int) -> None:
        self._client = client
        self._days = days
        self._by_number: dict[str, dict[str, dict[str, Any]]] = {}
        self._since: datetime | None = None  # listed from then on
        self._newest: datetime | None = None  # Qonto's created_at of the newest invoice listed
        self._error: QontoError | None = None

    def verdict(self, number: str, content: Mapping[str, str]
                ) -> tuple[dict[str, Any], bool] | str | None:
        """None: unknown to Qonto. (invoice, already submitted): the invoice to adopt. A str:
        Qonto has another invoice under this number (why it is refused)."""
        found = self.find(number, content.get("issue_date"))
        if not found:
            return None
        submitted = [i for i in found if _submitted(i)]
        invoice = (submitted or found)[0]
        differs = _differences(content, qonto_content(invoice), "at Qonto")
        if not differs:  # what Qonto's record does not carry (the type), its stored file does
            differs = _differences(content, self._stored_content(invoice),
                                   "in the file Qonto holds")
        if differs:
            state = "sent" if _submitted(invoice) else "imported, not sent yet"
            return (f"invoice number {number} already exists at Qonto as invoice {invoice['id']} "
                    f"(created {invoice.get('created_at') or 'at an unknown date'}, {state}), and "
                    f"this file's content differs ({'; '.join(differs)}): {NEVER_TWICE}")
        return invoice, bool(submitted)

    def _stored_content(self, invoice: Mapping[str, Any]) -> dict[str, str]:
        """The compared fields of the file Qonto holds for `invoice` (its attachment, API.md
        §6.1, §5.10); empty when there is none or the credentials may not read it, and then
        Qonto's record alone decides. An outage propagates: the invoice waits for a run
        that can tell."""
        attachment = invoice.get("attachment_id")
        if not isinstance(attachment, str) or not attachment:
            return {}
        try:
            name, data = self._client.download_attachment(attachment)
        except (PermissionDeniedError, NotFoundError):
            return {}
        fields = read_invoice_fields(data, name)
        return content_of(fields) if fields else {}

    def find(self, number: str, issue_date: str | None) -> list[dict[str, Any]]:
        if self._error is not None:
            raise self._error  # one failed listing per run: the run's other invoices wait too
        start = datetime.now(UTC) - timedelta(days=self._days)
        if issue_date:
            try:
                issued = date.fromisoformat(issue_date)
            except ValueError:
                pass
            else:
                issued_at = datetime(issued.year, issued.month, issued.day, tzinfo=UTC)
                start = min(start, max(self.FLOOR + self.MARGIN, issued_at) - self.MARGIN)
        if self._since is None or start < self._since:
            self._list(start, self._since)
        return sorted(self._by_number.get(number, {}).values(),
                      key=lambda i: str(i.get("created_at") or ""))

    def _list(self, start: datetime, until: datetime | None) -> None:
        params: dict[str, Any] = {"filter[created_at_from]": _iso(start),
                                  "sort_by": "created_at:asc", "per_page": 100}
        if until is not None:
            params["filter[created_at_to]"] = _iso(until)
        try:
            for invoice in self._client.iter_client_invoices(**params):
                self._add(invoice)
        except (AuthenticationError, PermissionDeniedError):
            raise
        except QontoError as exc:
            self._error = exc
            raise
        if self._newest is None:  # nothing at Qonto yet: from our clock (minus a margin)
            self._newest = datetime.now(UTC) - self.MARGIN
        self._since = start

    def _recent(self) -> list[tuple[str | None, dict[str, Any]]]:
        """(number, invoice) of what Qonto created since the newest invoice listed (minus LAG),
        recorded as listed; oldest first."""
        assert self._newest is not None
        params: dict[str, Any] = {"filter[created_at_from]": _iso(self._newest - self.LAG),
                                  "sort_by": "created_at:asc", "per_page": 100}
        return [(self._add(i), i) for i in self._client.iter_client_invoices(**params)]

    def settle(self, batch: Sequence[Item], ids: Mapping[str, str]
               ) -> tuple[dict[str, str], dict[str, str]]:
        """Right after `batch` was imported as `ids` (upload sha -> Qonto id): the ids to send,
        and the invoices held back with why.

        Two senders that passed the check before import in the same moment have each imported
        the invoice: Qonto then holds its number twice. Each of them keeps the earliest one
        (by Qonto's `created_at`, then id), so both send the same invoice, which a repeated
        send_by_einvoice does not resubmit; the later import stays at Qonto, never sent. With
        other content in the earliest one, this file is refused. When Qonto cannot be asked,
        nothing is recorded as imported: the next run adopts the earliest by number."""
        mine = {i.upload_sha256: i for i in batch if i.upload_sha256 in ids and i.invoice_number}
        if not mine or self._newest is None:
            return dict(ids), {}
        keep, held = dict(ids), {}
        try:
            fresh = self._recent()
        except QontoError as exc:
            for sha, item in mine.items():
                del keep[sha]
                held[sha] = (f"imported as Qonto invoice {ids[sha]}, but not sent: "
                             + _unchecked(str(item.invoice_number), exc))
            return keep, held
        for sha, item in mine.items():
            number = str(item.invoice_number)
            others = [i for n, i in fresh if n == number and i.get("id") != ids[sha]]
            if not others:
                continue
            own = next((i for n, i in fresh if i.get("id") == ids[sha]), None)
            first = min(others + ([own] if own else []), key=_created)
            if own is not None and first is own:
                continue
            differs = _differences(item.content_fields, qonto_content(first), "at Qonto")
            if differs:
                del keep[sha]
                held[sha] = (f"invoice number {number} reached Qonto in the same moment from "
                             f"another sender, as invoice {first.get('id')}, and this file's "
                             f"content differs ({'; '.join(differs)}); its own import "
                             f"({ids[sha]}) is not sent: {NEVER_TWICE}")
            else:
                keep[sha] = str(first["id"])
        return keep, held

    def _add(self, invoice: dict[str, Any]) -> str | None:
        """Record a listed invoice; its number."""
        number = invoice.get("number") or invoice.get("invoice_number")
        ident = invoice.get("id")
        if not isinstance(number, str) or not isinstance(ident, str):
            return None
        self._by_number.setdefault(number, {})[ident] = invoice
        created = invoice.get("created_at")
        try:
            moment = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        except ValueError:
            return number
        if moment.tzinfo is not None and (self._newest is None or moment > self._newest):
            self._newest = moment
        return number

    def arrived(self, batch: Sequence[Item]) -> dict[str, str]:
        """Right before `batch` is imported: those of its invoices whose number reached Qonto
        since it was listed (another process or machine sending the same invoice at the same
        moment, from another state folder), each with why it is held back. Narrows that race
        from a whole run to the moment between this listing and the import; it cannot close
        it (Qonto has no lock, nor a uniqueness check by number, that a client could use)."""
        wanted = {i.invoice_number: i.upload_sha256 for i in batch if i.invoice_number}
        if not wanted or self._newest is None:
            return {}
        try:
            fresh = self._recent()
        except QontoError as exc:
            return {sha: _unchecked(number, exc) for number, sha in wanted.items()}
        held: dict[str, str] = {}
        for number, invoice in fresh:
            if number in wanted and wanted[number] not in held:
                held[wanted[number]] = (
                    f"invoice number {number} reached Qonto while this run was going, as "
                    f"invoice {invoice.get('id')} (created {invoice.get('created_at')}): another "
                    "process or machine is sending it; not imported (the next run adopts that "
                    "invoice, or refuses this file if its content differs)")
        return held


def _created(invoice: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key of Qonto invoices by creation: `created_at` (ISO 8601, UTC), then id."""
    created = str(invoice.get("created_at") or "")
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        created = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return created, str(invoice.get("id") or "")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
