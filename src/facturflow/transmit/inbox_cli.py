"""`facturflow inbox`: the supplier invoices received through Qonto's PA.

    facturflow inbox [list] [--download DIR] [--validate]   list (the former `inbox` command)
    facturflow inbox sync --to DIR [--status S] [--einvoices-only] [--since DATE]
    facturflow inbox show ID
    facturflow inbox reject ID --reason CODE [--note TEXT]
    facturflow inbox mark-paid ID [--date YYYY-MM-DD]

Exit codes: 0 done; 1 a received invoice is invalid (list --validate), a sync left invoices
it could not download (tried again next run), or Qonto refused the action (400: not in a
status that allows it; 422: a field it wants); 2 usage (an unknown reason code, a bad date);
3 configuration or authentication, or an unknown invoice id; 4 Qonto unreachable or failing;
6 the sync folder's state file is unreadable; 130 interrupted (the sync state stays
consistent: running it again continues).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click

from .. import exitcodes
from .cli import CommandError, command_errors, open_client, state_dir
from .errors import NotFoundError, ValidationRejectedError
from .qonto import QontoClient
from .reasons import Lang, RefusalReason, parse_reason

_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       help="text for people; json for scripts (one document).")
_STATE = click.option("--state", "state", type=click.Path(path_type=Path), default=None,
                      help="State folder (default $FACTURFLOW_STATE, else the user's).")
_LANG = click.option("--lang", type=click.Choice(["fr", "en"]), default="fr", show_default=True,
                     help="Language of the lifecycle labels.")


def _lang(lang: str) -> Lang:
    return "en" if lang == "en" else "fr"


def _lifecycle(code: object, lang: str = "fr") -> str:
    """"210 Refusée": the code with its label (lifecycle.describe_status when it exists)."""
    from .. import lifecycle

    describe = getattr(lifecycle, "describe_status", None)
    if describe is not None:
        try:
            return str(describe(code, lang))
        except Exception:  # a colleague's helper with another signature: fall back
            pass
    return f"{code} {lifecycle.label(str(code), 'en' if lang == 'en' else 'fr')}"


def _latest(invoice: dict[str, Any], lang: str) -> str:
    from .inbox import latest_code

    code = latest_code(invoice)
    return _lifecycle(code, lang) if code is not None else "no lifecycle event"


def _refused(exc: ValidationRejectedError, what: str) -> CommandError:
    return CommandError(exitcodes.INVALID, "refused_by_qonto", f"{what}: Qonto refused: "
                        f"{exc.message}", type(exc).__name__)


def _unknown(exc: NotFoundError, inv_id: str) -> CommandError:
    return CommandError(exitcodes.CONFIG, "not_found",
                        f"no supplier invoice {inv_id!r} in this organisation ({exc.message})",
                        type(exc).__name__)


# ---------------------------------------------------------------------------------------------
# list (the group's default)


def _list(download: Path | None, run_validation: bool, state: Path | None, fmt: str,
          lang: str) -> None:
    from ..pdf import safe_output_path

    folder = state_dir(state)
    rows: list[dict[str, Any]] = []
    invalid = False
    with command_errors(fmt, folder), open_client(folder) as client:
        for invoice in client.iter_supplier_invoices():
            row: dict[str, Any] = {
                "id": invoice.get("id"), "invoice_number": invoice.get("invoice_number"),
                "supplier_name": invoice.get("supplier_name"),
                "status": invoice.get("status"), "is_einvoice": invoice.get("is_einvoice"),
                "lifecycle": _latest(invoice, lang),
                "file": None, "valid": None, "findings": [],
            }
            attachment_id = invoice.get("attachment_id")
            if (download or run_validation) and isinstance(attachment_id, str):
                name, data = client.download_attachment(attachment_id)
                if download is not None:
                    download.mkdir(parents=True, exist_ok=True)
                    target = safe_output_path(download, f"{invoice.get('id')}-{name}")
                    target.write_bytes(data)
                    row["file"] = str(target)
                if run_validation:
                    from ..validation import validate

                    report = validate(data)
                    row["valid"] = report.ok
                    row["findings"] = [f"{f.rule}: {f.message}" for f in report.fatal]
                    if report.error:
                        row["findings"].insert(0, report.error)
                    invalid = invalid or not report.ok
            rows.append(row)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for row in rows:
            verdict = "" if row["valid"] is None else (" valid" if row["valid"] else " INVALID")
            saved = f" -> {row['file']}" if row["file"] else ""
            click.echo(f"{row['id']}: {row['invoice_number'] or '?'} from "
                       f"{row['supplier_name'] or '?'} [{row['status']}] {row['lifecycle']}"
                       f"{verdict}{saved}")
            for finding in row["findings"][:5]:
                click.echo(f"    {finding}")
        click.echo(f"{len(rows)} received invoice(s)")
    sys.exit(exitcodes.INVALID if invalid else exitcodes.OK)


def _folder(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    # "" would be the current folder: what `--to "$DIR"` (or --download) with DIR unset gives.
    if value is not None and not value.strip():
        raise click.BadParameter("is empty (an unset variable?): name the folder ('.' for the "
                                 "current one)")
    return Path(value) if value is not None else None


_LIST_OPTIONS = [
    click.option("--download", "download", type=click.Path(), callback=_folder,
                 default=None,
                 help="Save each received invoice's file in this folder."),
    click.option("--validate", "run_validation", is_flag=True,
                 help="Run the validation stage on each received invoice."),
    _STATE, _FORMAT, _LANG,
]


def _with_list_options(func: Any) -> Any:
    for option in reversed(_LIST_OPTIONS):
        func = option(func)
    return func


@click.group("inbox", invoke_without_command=True)
@_with_list_options
@click.pass_context
def inbox_group(ctx: click.Context, download: Path | None, run_validation: bool,
                state: Path | None, fmt: str, lang: str) -> None:
    """Received supplier invoices: list (the default), sync, show, reject, mark-paid."""
    if ctx.invoked_subcommand is None:
        _list(download, run_validation, state, fmt, lang)
    elif download is not None or run_validation:
        raise click.UsageError(f"--download and --validate belong to `inbox list`, not to "
                               f"`inbox {ctx.invoked_subcommand}`")


def _inherit(state: Path | None, fmt: str, lang: str) -> tuple[Path | None, str, str]:
    """--state, --format and --lang given before the subcommand (`inbox --state S sync`) count
    unless the subcommand sets them itself."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    parent = ctx.parent
    values: dict[str, Any] = {"state": state, "fmt": fmt, "lang": lang}
    if parent is not None:
        for name in values:
            if name in parent.params and (
                    ctx.get_parameter_source(name) is ParameterSource.DEFAULT
                    and parent.get_parameter_source(name) not in (None,
                                                                  ParameterSource.DEFAULT)):
                values[name] = parent.params[name]
    return values["state"], str(values["fmt"]), str(values["lang"])


@inbox_group.command("list")
@_with_list_options
def list_command(download: Path | None, run_validation: bool, state: Path | None, fmt: str,
                 lang: str) -> None:
    """List received supplier invoices; download and validate them."""
    state, fmt, lang = _inherit(state, fmt, lang)
    _list(download, run_validation, state, fmt, lang)


# ---------------------------------------------------------------------------------------------
# sync


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from datetime import datetime

    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 "
                                 "date-time") from None
    return value


# Qonto's supplier-invoice statuses (API.md: those seen officially, and a third-party list).
KNOWN_STATUSES = ("to_review", "to_approve", "awaiting_payment", "to_pay", "pending",
                  "scheduled", "paid", "archived", "rejected", "discarded")


def _statuses(ctx: click.Context, param: click.Parameter,
              value: tuple[str, ...]) -> tuple[str, ...]:
    # Kept (the list is not official), but said: a typo would copy nothing, silently.
    for status in value:
        if status not in KNOWN_STATUSES:
            click.echo(f"warning: --status {status!r} is not a status Qonto is known to use "
                       f"({', '.join(KNOWN_STATUSES)}): no invoice may match", err=True)
    return value


@inbox_group.command("sync")
@click.option("--to", "target", type=click.Path(file_okay=False), callback=_folder,
              required=True, help="Folder of the copy (created; its state file makes the "
              "next run incremental).")
@click.option("--status", "statuses", multiple=True, metavar="STATUS", callback=_statuses,
              help="Only invoices in this Qonto status (to_review, to_approve, "
              "awaiting_payment, paid, rejected...); repeatable.")
@click.option("--einvoices-only", is_flag=True, help="Only e-invoices (is_einvoice).")
@click.option("--since", callback=_since, default=None, metavar="DATE",
              help="Only invoices received (created) at or after this date or date-time.")
@_STATE
@_FORMAT
@_LANG
def sync_command(target: Path, statuses: tuple[str, ...], einvoices_only: bool,
                 since: str | None, state: Path | None, fmt: str, lang: str) -> None:
    """Copy the received invoices not yet in DIR, with their XML, validation report and
    EN 16931 model, and an index (index.jsonl, index.csv) for an accounting import."""
    state, fmt, lang = _inherit(state, fmt, lang)
    from .inbox import InboxStateError, SyncFilters, sync_inbox

    folder = state_dir(state)
    filters = SyncFilters(tuple(statuses), einvoices_only, since)

    def say(kind: str, row: Any) -> None:
        if fmt == "text":
            if kind == "failed":
                click.echo(f"{row['id']}: {row['invoice_number'] or '?'} NOT downloaded: "
                           f"{row['error']} (tried again next run)")
                return
            lifecycle = (_lifecycle(row["lifecycle_code"], lang)
                         if row.get("lifecycle_code") is not None else "no lifecycle event")
            verdict = "" if kind == "refreshed" else (
                " valid" if row.get("valid") else " INVALID")
            click.echo(f"{row['id']}: {row['invoice_number'] or '?'} from "
                       f"{row['supplier_name'] or '?'} {kind} [{row['status']}] {lifecycle}"
                       f"{verdict} -> {target / row['folder']}")

    def interrupted(error: CommandError) -> None:
        error.message = ("interrupted (Ctrl-C): the invoices stored so far are complete and "
                         "recorded; running the same command again continues")

    with command_errors(fmt, folder, interrupted):
        try:
            with open_client(folder) as client:
                result = sync_inbox(client, target, filters, lang=lang, progress=say)
        except InboxStateError as exc:
            raise CommandError(exitcodes.STATE, "inbox_state", str(exc),
                               type(exc).__name__) from None
        except OSError as exc:
            written = Path(os.fsdecode(exc.filename)) if exc.filename is not None else None
            if written is None or not written.resolve().is_relative_to(target.resolve()):
                raise  # not the copy's folder: command_errors says what it is
            raise CommandError(exitcodes.USAGE, "cannot_write",
                               f"cannot write the copy in {target}: {exc.strerror or exc}",
                               type(exc).__name__) from None
    if fmt == "json":
        click.echo(json.dumps({**result.as_dict(), "folder": str(target)}, indent=2,
                              ensure_ascii=False))
    else:
        click.echo(f"downloaded {len(result.downloaded)}, refreshed {len(result.refreshed)}, "
                   f"unchanged {result.unchanged}, failed {len(result.failed)}; "
                   f"{len(result.index)} invoice(s) in {target / 'index.csv'}")
    sys.exit(exitcodes.INVALID if result.failed else exitcodes.OK)


# ---------------------------------------------------------------------------------------------
# show, reject, mark-paid


@inbox_group.command("show")
@click.argument("invoice_id")
@_STATE
@_FORMAT
@_LANG
def show_command(invoice_id: str, state: Path | None, fmt: str, lang: str) -> None:
    """One received invoice: Qonto status, labels, lifecycle events and attachments."""
    state, fmt, lang = _inherit(state, fmt, lang)
    folder = state_dir(state)
    with command_errors(fmt, folder), open_client(folder) as client:
        try:
            invoice = client.get_supplier_invoice(_checked_id(invoice_id))
        except NotFoundError as exc:
            raise _unknown(exc, invoice_id) from None
        attachments: list[dict[str, Any]] = []
        for key in ("attachment_id", "display_attachment_id"):
            att = invoice.get(key)
            if isinstance(att, str) and att not in {a.get("id") for a in attachments}:
                attachments.append(client.get_attachment(att))
    events = sorted((e for e in invoice.get("einvoicing_lifecycle_events") or ()
                     if isinstance(e, dict)), key=lambda e: str(e.get("timestamp") or ""))
    if fmt == "json":
        body = {**invoice, "lifecycle": [
            {**e, "label": _lifecycle(e.get("status_code"), lang)} for e in events],
            "attachments": attachments}
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        sys.exit(exitcodes.OK)
    total = invoice.get("total_amount")
    amount = (f"{total.get('value')} {total.get('currency')}" if isinstance(total, dict)
              else "?")
    click.echo(f"{invoice.get('id')}: {invoice.get('invoice_number') or '?'} from "
               f"{invoice.get('supplier_name') or '?'}, {amount}")
    kind = "e-invoice" if invoice.get("is_einvoice") else "not an e-invoice"
    if invoice.get("e_invoice_type"):
        kind += f" ({invoice['e_invoice_type']})"
    click.echo(f"  status: {invoice.get('status')}; {kind}")
    click.echo(f"  issued {invoice.get('issue_date') or '?'}, due "
               f"{invoice.get('due_date') or '?'}, received {invoice.get('created_at') or '?'}"
               + (f", paid {invoice['payment_date']}" if invoice.get("payment_date") else ""))
    if invoice.get("declined_reason_code") or invoice.get("declined_note"):
        code = invoice.get("declined_reason_code")
        try:
            reason = f"{code} ({parse_reason(str(code)).label(_lang(lang))})" if code else "-"
        except ValueError:
            reason = str(code)
        click.echo(f"  declined: {reason}" + (f": {invoice['declined_note']}"
                                             if invoice.get("declined_note") else ""))
    click.echo("  lifecycle:" if events else "  lifecycle: no event")
    for event in events:
        why = " ".join(str(event[k]) for k in ("reason", "reason_message") if event.get(k))
        click.echo(f"    {event.get('timestamp')} {_lifecycle(event.get('status_code'), lang)}"
                   + (f": {why}" if why else ""))
    for att in attachments:
        click.echo(f"  attachment {att.get('id')}: {att.get('file_name')} "
                   f"({att.get('file_content_type')}, {att.get('file_size')} bytes); its "
                   "download URL lives 30 minutes")
    sys.exit(exitcodes.OK)


def _checked_id(value: str) -> str:
    if not value or any(ch in value for ch in "/?#%\\ ") or value in (".", ".."):
        raise CommandError(exitcodes.USAGE, "usage", f"{value!r} is not a supplier invoice id")
    return value


def _reason(ctx: click.Context, param: click.Parameter, value: str) -> RefusalReason:
    try:
        return parse_reason(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_REASON_HELP = "AFNOR refusal reason code: " + "; ".join(
    f"{r.value} ({r.label('en')})" for r in RefusalReason)


@inbox_group.command("reject")
@click.argument("invoice_id")
@click.option("--reason", required=True, callback=_reason, metavar="CODE", help=_REASON_HELP)
@click.option("--note", default=None, help="Free text sent with the refusal (declined_note).")
@_STATE
@_FORMAT
@_LANG
def reject_command(invoice_id: str, reason: RefusalReason, note: str | None,
                   state: Path | None, fmt: str, lang: str) -> None:
    """Refuse a received invoice with an AFNOR reason code (lifecycle 210 Refusée)."""
    state, fmt, lang = _inherit(state, fmt, lang)
    invoice = _act(state, fmt, invoice_id, "reject", lambda client, checked: (
        client.reject_supplier_invoice(checked, reason.value, note or reason.label("fr"))))
    _done(invoice, f"rejected ({reason.value}: {reason.label(_lang(lang))})", fmt, lang)


def _paid_date(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if day > date.today():
        raise click.BadParameter(f"{value} is in the future")
    return value


@inbox_group.command("mark-paid")
@click.argument("invoice_id")
@click.option("--date", "paid_on", callback=_paid_date, default=None, metavar="YYYY-MM-DD",
              help="Payment date (default: today, as Qonto sees it).")
@_STATE
@_FORMAT
@_LANG
def mark_paid_command(invoice_id: str, paid_on: str | None, state: Path | None, fmt: str,
                      lang: str) -> None:
    """Mark a received invoice paid (lifecycle 211 Paiement transmis for an e-invoice)."""
    state, fmt, lang = _inherit(state, fmt, lang)
    invoice = _act(state, fmt, invoice_id, "mark-paid", lambda client, checked: (
        client.mark_supplier_invoice_paid(checked, paid_on)))
    _done(invoice, f"paid on {invoice.get('payment_date') or paid_on or 'today'}", fmt, lang)


def _act(state: Path | None, fmt: str, invoice_id: str, what: str,
         action: Callable[[QontoClient, str], dict[str, Any]]) -> dict[str, Any]:
    """Do `action` (the command `what`) on a received invoice: the invoice after it (read again
    when Qonto's answer has no body); an unknown id or Qonto's refusal as one line."""
    folder = state_dir(state)
    with command_errors(fmt, folder), open_client(folder) as client:
        try:
            invoice = action(client, _checked_id(invoice_id)) or client.get_supplier_invoice(
                invoice_id)
        except NotFoundError as exc:
            raise _unknown(exc, invoice_id) from None
        except ValidationRejectedError as exc:
            raise _refused(exc, f"{what} {invoice_id}") from None
    return invoice


def _done(invoice: dict[str, Any], what: str, fmt: str, lang: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({**invoice, "lifecycle_label": _latest(invoice, lang)}, indent=2,
                              ensure_ascii=False))
    else:
        click.echo(f"{invoice.get('id')}: {invoice.get('invoice_number') or '?'} {what}; "
                   f"status {invoice.get('status')}, lifecycle {_latest(invoice, lang)}")
    sys.exit(exitcodes.OK)


__all__ = ["inbox_group"]
