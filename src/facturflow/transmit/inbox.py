"""The supplier-invoice inbox: an incremental copy of Qonto's received invoices into a folder.

`sync_inbox(client, folder)` stores each received invoice once, in a folder of its own under a
stable name (`<supplier>_<number>_<id tail>`), with:

    original-<file name>   the file as received (PDF or XML)
    invoice.xml            the invoice XML (embedded in a Factur-X PDF, or the XML itself)
    validation.json        facturflow's validation report
    invoice.json           the invoice in the EN 16931 model (keyed by BT/BG ids)
    qonto.json             Qonto's supplier_invoice object as last seen

and keeps `index.jsonl` and `index.csv` (one row per invoice: supplier, SIREN, number, dates,
amounts, currency, Qonto status, lifecycle status, paths) ready for an accounting import.

What it already has and how far it listed live in `<folder>/.facturflow-inbox.json` (written
atomically after each invoice): a cursor per filter set (the latest `updated_at` seen, asked
back with `filter[updated_at_from]`, inclusive) and the ids already stored. A second run
downloads nothing it has; an invoice whose Qonto status changed gets its index row and
`qonto.json` refreshed without a new download. An interrupted run leaves every stored invoice
complete (each is written to a hidden folder, then renamed) and the state matching them.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..outputs import write_private_atomically
from .errors import NotFoundError, PermissionDeniedError, ResponseTooLargeError
from .qonto import QontoClient

STATE_NAME = ".facturflow-inbox.json"
LOCK_NAME = ".facturflow-inbox.lock"
STATE_VERSION = 1
INDEX_FIELDS = (
    "id", "supplier_name", "supplier_siren", "supplier_vat", "invoice_number", "issue_date",
    "due_date", "total_without_vat", "vat_total", "total_with_vat", "amount_due", "currency",
    "status", "lifecycle_code", "lifecycle_label", "is_einvoice", "valid", "received_at",
    "updated_at", "folder", "original", "xml", "model", "report", "error",
)


class InboxStateError(Exception):
    """The inbox folder's state file is unreadable or not facturflow's."""


@dataclass(frozen=True)
class SyncFilters:
    """Which received invoices to copy: Qonto statuses, e-invoices only, received since."""

    statuses: tuple[str, ...] = ()
    einvoices_only: bool = False
    since: str | None = None  # an ISO 8601 date or date-time (created_at from)

    @property
    def key(self) -> str:
        """The cursor's key: a different filter set lists from its own beginning."""
        return json.dumps([sorted(self.statuses), self.einvoices_only, self.since])

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.statuses:
            params["filter[status][]"] = list(self.statuses)
        if self.since:
            params["filter[created_at_from]"] = self.since
        return params

    def keeps(self, invoice: Mapping[str, Any]) -> bool:
        """Checked locally too: a server that ignores a filter must not widen the copy."""
        if self.statuses and invoice.get("status") not in self.statuses:
            return False
        if self.einvoices_only and not invoice.get("is_einvoice"):
            return False
        return not self.since or _later(invoice.get("created_at"), self.since)


def _later(value: object, since: str) -> bool:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        bound = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return True
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    bound = bound if bound.tzinfo else bound.replace(tzinfo=UTC)
    return moment >= bound


@dataclass
class SyncResult:
    """What a run did: rows downloaded, refreshed (status changed), failed; unchanged count."""

    downloaded: list[dict[str, Any]] = field(default_factory=list)
    refreshed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    index: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"downloaded": self.downloaded, "refreshed": self.refreshed,
                "failed": self.failed, "unchanged": self.unchanged,
                "counts": {"downloaded": len(self.downloaded), "refreshed": len(self.refreshed),
                           "failed": len(self.failed), "unchanged": self.unchanged,
                           "indexed": len(self.index)}}


# ---------------------------------------------------------------------------------------------
# State


def load_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"version": STATE_VERSION, "cursors": {}, "invoices": {}}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InboxStateError(f"{path}: not JSON (delete it to start the copy afresh)") from None
    if (not isinstance(data, dict) or data.get("version") != STATE_VERSION
            or not isinstance(data.get("cursors"), dict)
            or not isinstance(data.get("invoices"), dict)):
        raise InboxStateError(f"{path}: not a facturflow inbox state (version {STATE_VERSION})")
    return data


def save_state(folder: Path, state: Mapping[str, Any]) -> None:
    write_private_atomically(folder / STATE_NAME,
                             json.dumps(state, indent=1, ensure_ascii=False,
                                        sort_keys=True).encode())


def write_index(folder: Path, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted((dict(r) for r in rows),
                     key=lambda r: (str(r.get("received_at") or ""), str(r.get("id"))))
    lines = "".join(json.dumps({k: r.get(k) for k in INDEX_FIELDS}, ensure_ascii=False) + "\n"
                    for r in ordered)
    write_private_atomically(folder / "index.jsonl", lines.encode())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_FIELDS, extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    for row in ordered:
        writer.writerow({k: _csv_cell(row.get(k)) for k in INDEX_FIELDS})
    # UTF-8 with a BOM: what spreadsheet and accounting imports read as UTF-8.
    write_private_atomically(folder / "index.csv", buffer.getvalue().encode("utf-8-sig"))
    return ordered


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = "true" if value is True else "false" if value is False else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: a supplier's name must not run.
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _number(text) else text


def _number(text: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", text) is not None


# ---------------------------------------------------------------------------------------------
# One invoice


def _slug(value: object, limit: int = 40) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "-", str(value or "")).strip("-")
    return text[:limit].strip("-") or "unknown"


def folder_name(invoice: Mapping[str, Any]) -> str:
    """The stable folder name of a received invoice: supplier, number and the id's tail."""
    ident = str(invoice.get("id"))
    tail = _slug(ident, 64)[-12:] if _slug(ident, 64) != "unknown" else hashlib.sha256(
        ident.encode()).hexdigest()[:12]
    return f"{_slug(invoice.get('supplier_name'))}_{_slug(invoice.get('invoice_number'))}_{tail}"


def latest_code(invoice: Mapping[str, Any]) -> int | None:
    from ..lifecycle import code_of, latest_event

    events = [e for e in invoice.get("einvoicing_lifecycle_events") or () if isinstance(e, dict)]
    latest = latest_event(events)
    code = code_of(latest.get("status_code")) if latest is not None else None
    return int(code) if code is not None else None


def _status_fields(invoice: Mapping[str, Any], lang: str) -> dict[str, Any]:
    from ..lifecycle import label

    code = latest_code(invoice)
    return {"status": invoice.get("status"), "lifecycle_code": code,
            "lifecycle_label": label(code, "en" if lang == "en" else "fr")
            if code is not None else None,
            "updated_at": invoice.get("updated_at")}


def _money(value: object) -> str | None:
    if isinstance(value, dict):
        return str(value.get("value")) if value.get("value") is not None else None
    return None if value is None else str(value)


def store_invoice(folder: Path, invoice: Mapping[str, Any], file_name: str, data: bytes,
                  lang: str = "fr") -> dict[str, Any]:
    """Write one received invoice's folder (atomically) and return its index row."""
    from ..detection import detect_bytes
    from ..errors import FacturflowError
    from ..pdf import safe_output_path
    from ..reading import read
    from ..validation import validate

    name = folder_name(invoice)
    final = folder / name
    work = Path(tempfile.mkdtemp(dir=folder, prefix=f".partial-{name[-12:]}-"))
    try:
        original = safe_output_path(work, "original-" + (
            re.split(r"[/\\]", file_name)[-1].lstrip(".") or "file"))
        original.write_bytes(data)
        row: dict[str, Any] = {
            "id": invoice.get("id"), "supplier_name": invoice.get("supplier_name"),
            "supplier_siren": None, "supplier_vat": invoice.get("vat_number"),
            "invoice_number": invoice.get("invoice_number"),
            "issue_date": invoice.get("issue_date"), "due_date": invoice.get("due_date"),
            "total_without_vat": _money(invoice.get("total_amount_excluding_taxes")),
            "vat_total": _money(invoice.get("total_tax_amount")),
            "total_with_vat": _money(invoice.get("total_amount")),
            "amount_due": _money(invoice.get("payable_amount")),
            "currency": (invoice.get("total_amount") or {}).get("currency")
            if isinstance(invoice.get("total_amount"), dict) else None,
            "is_einvoice": bool(invoice.get("is_einvoice")),
            "received_at": invoice.get("created_at"), "folder": name,
            "original": f"{name}/{original.name}", "xml": None, "model": None,
            "report": f"{name}/validation.json", "valid": None, "error": None,
            **_status_fields(invoice, lang),
        }
        report = validate(data)
        (work / "validation.json").write_text(
            json.dumps(report.as_dict(), indent=2, ensure_ascii=False), "utf-8")
        row["valid"] = report.ok
        try:
            document = detect_bytes(data, name=file_name)
            (work / "invoice.xml").write_bytes(document.xml)
            row["xml"] = f"{name}/invoice.xml"
            model = read(document)
        except FacturflowError as exc:
            row["error"] = exc.message
        else:
            (work / "invoice.json").write_text(model.to_json(), "utf-8")
            row["model"] = f"{name}/invoice.json"
            seller, totals = model.seller, model.totals
            if seller is not None:
                row["supplier_name"] = seller.name or row["supplier_name"]
                row["supplier_siren"] = seller.siren
                row["supplier_vat"] = seller.vat_id or row["supplier_vat"]
            row.update(invoice_number=model.number, issue_date=model.issue_date.isoformat(),
                       due_date=model.due_date.isoformat() if model.due_date else None,
                       currency=model.currency_code)
            if totals is not None:
                for key, value in (("total_without_vat", totals.tax_exclusive_amount),
                                   ("vat_total", totals.vat_total),
                                   ("total_with_vat", totals.tax_inclusive_amount),
                                   ("amount_due", totals.amount_due)):
                    if value is not None:
                        row[key] = str(value)
        (work / "qonto.json").write_text(
            json.dumps(invoice, indent=2, ensure_ascii=False), "utf-8")
        if final.exists():  # a copy the state does not know (deleted state): replace it
            shutil.rmtree(final)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return row


# ---------------------------------------------------------------------------------------------
# The run


def _download(client: QontoClient, attachment_id: str) -> tuple[str, bytes]:
    """The attachment's name and bytes; its signed URL lives 30 minutes, so an expired or
    refused URL is fetched once more before giving up."""
    try:
        return client.download_attachment(attachment_id)
    except PermissionDeniedError:
        return client.download_attachment(attachment_id)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One sync per folder at a time: a second one fails at once instead of racing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (the sandbox, not the inbox, needs fcntl)
        yield
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InboxStateError(f"{folder}: another `inbox sync` is writing to this folder; "
                                  "wait for it to finish") from None
        yield
    finally:
        os.close(fd)


def _cleanup_partials(folder: Path) -> None:
    for leftover in folder.glob(".partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def sync_inbox(client: QontoClient, folder: Path, filters: SyncFilters | None = None,
               *, lang: str = "fr",
               progress: Callable[[str, Mapping[str, Any]], None] | None = None) -> SyncResult:
    """Copy the received invoices not yet in `folder` (see the module docstring).

    Per-invoice problems (no attachment, a download over QONTO_MAX_DOWNLOAD_BYTES, a refused
    URL) are reported in `failed` and tried again next run; credentials, network and state
    problems raise (the state keeps what was stored before).
    """
    filters = filters or SyncFilters()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        return _sync(client, folder, filters, lang, progress)


def _sync(client: QontoClient, folder: Path, filters: SyncFilters, lang: str,
          progress: Callable[[str, Mapping[str, Any]], None] | None) -> SyncResult:
    state = load_state(folder)
    _cleanup_partials(folder)
    known: dict[str, Any] = state["invoices"]
    cursor = state["cursors"].get(filters.key)
    params = filters.params()
    if cursor:
        params["filter[updated_at_from]"] = cursor
    result = SyncResult()
    seen: list[str] = []
    failed_at: list[str] = []
    for listed in client.iter_supplier_invoices(**params):
        updated = str(listed.get("updated_at") or "")
        seen.append(updated)
        if not filters.keeps(listed):
            continue
        inv_id = str(listed.get("id"))
        entry = known.get(inv_id)
        if entry is not None and entry.get("updated_at") == listed.get("updated_at"):
            result.unchanged += 1
            continue
        invoice = dict(listed)
        if "einvoicing_lifecycle_events" not in invoice:  # the list may drop them (§10 Q6)
            invoice = client.get_supplier_invoice(inv_id)
        if entry is not None:  # known: its status moved on; no new download
            row = {**entry["row"], **_status_fields(invoice, lang)}
            target = folder / str(entry["row"]["folder"])
            if target.is_dir():
                write_private_atomically(target / "qonto.json", json.dumps(
                    invoice, indent=2, ensure_ascii=False).encode())
            known[inv_id] = {"updated_at": invoice.get("updated_at"), "row": row}
            save_state(folder, state)
            result.refreshed.append(row)
            if progress:
                progress("refreshed", row)
            continue
        attachment_id = invoice.get("attachment_id")
        try:
            if not isinstance(attachment_id, str):
                raise NotFoundError("the supplier invoice has no attachment")
            file_name, data = _download(client, attachment_id)
        except (NotFoundError, PermissionDeniedError, ResponseTooLargeError) as exc:
            failure = {"id": inv_id, "invoice_number": invoice.get("invoice_number"),
                       "error": exc.message}
            result.failed.append(failure)
            failed_at.append(updated)
            if progress:
                progress("failed", failure)
            continue
        row = store_invoice(folder, invoice, file_name, data, lang)
        known[inv_id] = {"updated_at": invoice.get("updated_at"), "row": row}
        save_state(folder, state)  # after the folder: a stored invoice is never lost
        result.downloaded.append(row)
        if progress:
            progress("downloaded", row)
    # The next run lists from the latest change seen, or from the earliest failure so that
    # it is tried again (the bound is inclusive; known ids are skipped).
    moved = min(failed_at) if failed_at else (max(seen) if seen else None)
    if moved:
        state["cursors"][filters.key] = moved
    save_state(folder, state)
    result.index = write_index(folder, (e["row"] for e in known.values()))
    return result


__all__ = ["INDEX_FIELDS", "STATE_NAME", "InboxStateError", "SyncFilters", "SyncResult",
           "folder_name", "load_state", "store_invoice", "sync_inbox", "write_index"]
