"""`facturflow outbox`: look after the outbox (list, show, retry, forget, check).

    facturflow outbox list [--failed | --stuck]   all invoices, or those in trouble
    facturflow outbox show REF                    one invoice's full history and lifecycle
    facturflow outbox retry REF                   send a failed invoice again, now
    facturflow outbox forget REF [--yes]          drop an entry (never one Qonto has as sent)
    facturflow outbox check                       integrity of the outbox and stored uploads
    facturflow outbox migrate --to URL            copy a folder's outbox into PostgreSQL

REF is a source path, Qonto's invoice id, the invoice number or an upload sha256 prefix (8+).
--state is a folder or a postgresql:// URL (see facturflow.transmit.store).
Exit codes as in facturflow.transmit.cli; each but `migrate` exits 6 when the state folder
does not exist, `check` also when something needs attention, `migrate` 6 when rows already
in the database differ from the folder's (nothing copied).
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import click

from .. import exitcodes
from .cli import (
    STATE_HELP,
    CommandError,
    _print_summary,
    command_errors,
    existing_state,
    local_folder,
    open_client,
    state_location,
)
from .outbox import Item
from .outbox_pg import is_database_url, not_a_database_url
from .store import StateLocation, check, describe, open_outbox, organisations

_STUCK = ("validated", "importing", "imported", "sending")

_state_option = click.option("--state", "state", default=None, metavar="FOLDER|URL",
                             help=STATE_HELP)
_format_option = click.option("--format", "fmt", type=click.Choice(["text", "json"]),
                              default="text",
                              help="text for people; json for scripts (one document).")


@click.group("outbox")
def outbox_group() -> None:
    """Look after the outbox: list failed or stuck invoices, show, retry, forget, check."""


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(item: Item) -> str:
    outcome = f", {item.verdict.describe()}" if item.state == "sent" else ""
    error = f": {item.error}" if item.state == "failed" and item.error else ""
    return (f"{item.upload_sha256[:12]} {item.source_path}: {item.invoice_number or '?'} "
            f"{item.state}{outcome}{error}")


def _find(folder: StateLocation, ref: str) -> tuple[str, Item]:
    """The one item REF names (organisation, item); a CommandError otherwise."""
    found: list[tuple[str, Item]] = []
    for org in organisations(folder):
        with open_outbox(folder, org, lock=False) as outbox:
            found.extend((org, i) for i in outbox.find(ref))
    if not found:
        raise CommandError(exitcodes.USAGE, "not_in_outbox",
                           f"no invoice in the outbox {describe(folder)} matches {ref!r}")
    if len(found) > 1:
        names = ", ".join(i.upload_sha256[:12] for _, i in found)
        raise CommandError(exitcodes.USAGE, "ambiguous",
                           f"{ref!r} matches {len(found)} entries ({names}): use a sha prefix")
    return found[0]


@outbox_group.command("list")
@click.option("--failed", "only", flag_value="failed",
              help="Only invoices that failed, or were refused, rejected, not delivered.")
@click.option("--stuck", "only", flag_value="stuck",
              help="Only invoices a run left half-way (validated, importing, imported, "
                   "sending): the next send takes them up.")
@_state_option
@_format_option
def list_command(only: str | None, state: str | None, fmt: str) -> None:
    """List the outbox's invoices."""
    folder = existing_state(state, fmt)
    items: list[Item] = []
    with command_errors(fmt, local_folder(folder)):
        for org in organisations(folder):
            with open_outbox(folder, org, lock=False) as outbox:
                items.extend(outbox.items())
    if only == "failed":
        items = [i for i in items if i.state == "failed"
                 or (i.state == "sent" and i.verdict.negative)]
    elif only == "stuck":
        items = [i for i in items if i.state in _STUCK]
    if fmt == "json":
        click.echo(json.dumps([i.as_dict() for i in items], indent=2, ensure_ascii=False))
    else:
        for item in items:
            click.echo(_line(item))
        click.echo(f"{len(items)} invoice(s)")


@outbox_group.command("show")
@click.argument("ref")
@_state_option
@_format_option
def show_command(ref: str, state: str | None, fmt: str) -> None:
    """One invoice's entry, its full history and its lifecycle events."""
    from ..lifecycle import label

    folder = existing_state(state, fmt)
    with command_errors(fmt, local_folder(folder)):
        org, item = _find(folder, ref)
        with open_outbox(folder, org, lock=False) as outbox:
            history = outbox.history(item.upload_sha256)
            blob = outbox.blob_problem(item)
    if fmt == "json":
        body: dict[str, Any] = {**item.as_dict(), "organization": org,
                                "stored_upload": blob or "ok",
                                "history": [{"at": at, "state": st, "detail": detail}
                                            for at, st, detail in history]}
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
        return
    click.echo(_line(item))
    click.echo(f"  organisation {org}; invoice id {item.invoice_id or '-'}; "
               f"upload {item.file_name} ({item.size} bytes, {item.upload_format}), "
               f"stored upload {blob or 'ok'}")
    click.echo("  history:")
    for at, st, detail in history:
        click.echo(f"    {_when(at)} {st}{': ' + detail if detail else ''}")
    if item.events:
        click.echo("  lifecycle:")
        for event in item.events:
            code = event.get("status_code")
            reason = " ".join(str(event[k]) for k in ("reason", "reason_message")
                              if event.get(k))
            click.echo(f"    {event.get('timestamp')} {code} {label(str(code))}"
                       f"{': ' + reason if reason else ''}")


@outbox_group.command("retry")
@click.argument("ref")
@_state_option
@_format_option
def retry_command(ref: str, state: str | None, fmt: str) -> None:
    """Send a failed (or stuck) invoice again now: its stored upload is checked (rebuilt from
    an unchanged source if missing or corrupt), its entry reset, then the send stage runs on
    its source file, exactly as `facturflow send FILE` would (nothing is sent twice)."""
    from .pipeline import SendOptions, send_invoices

    folder = existing_state(state, fmt)
    with command_errors(fmt, local_folder(folder)):
        org, item = _find(folder, ref)
        if item.state == "sent":
            raise CommandError(exitcodes.USAGE, "already_sent",
                               f"{item.source_path} was sent already (invoice "
                               f"{item.invoice_id}): nothing to retry")
        with open_outbox(folder, org) as outbox:
            if item.invoice_id is None:
                outbox.blob(item)  # rebuilds a missing/corrupt stored upload, or says why not
            outbox.reset_failed(item.upload_sha256)
        if not Path(item.source_path).is_file():
            raise CommandError(exitcodes.USAGE, "source_missing",
                               f"{item.source_path} is gone; its entry is reset and the next "
                               "`facturflow send` of that file sends it (or `facturflow outbox "
                               f"forget {item.upload_sha256[:12]}`)")
        upload, _, rules = item.upload_format.partition(":")
        options = SendOptions(upload="xml" if upload == "xml" else "facturx",
                              rules=None if rules in ("", "default") else rules)
        with open_client(local_folder(folder)) as client:
            summary = send_invoices([item.source_path], client, folder, options)
    if fmt == "json":
        click.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_summary(summary, False)
    sys.exit(summary.exit_code)


def _confirmed(question: str) -> bool:
    """Ask on stderr; no answer (standard input closed, as in a script) is a no, with a hint."""
    try:
        return click.confirm(question, err=True)
    except click.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise  # Ctrl-C: the CLI exits 130
        raise CommandError(exitcodes.USAGE, "not_confirmed",
                           "no answer (standard input is closed): nothing forgotten; "
                           "add --yes to forget without asking") from None


@outbox_group.command("forget")
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_state_option
@_format_option
def forget_command(ref: str, yes: bool, state: str | None, fmt: str) -> None:
    """Drop an entry, so that the next send treats its file as new. Refused when the invoice
    was sent, or when Qonto has it as sent (asked when the entry has a Qonto invoice id)."""
    folder = existing_state(state, fmt)
    with command_errors(fmt, local_folder(folder)):
        org, item = _find(folder, ref)
        refusal = (f"{item.source_path} ({item.invoice_number or '?'}) was sent (invoice "
                   f"{item.invoice_id}); forgetting it would let it be sent twice")
        if item.state == "sent":
            raise CommandError(exitcodes.INVALID, "sent", refusal)
        if item.invoice_id is not None:
            with open_client(local_folder(folder), say=False) as client:
                invoice = client.get_client_invoice(item.invoice_id)
            if invoice.lifecycle_events or invoice.einvoicing_status not in (None, "pending"):
                raise CommandError(exitcodes.INVALID, "sent_at_qonto",
                                   f"Qonto has it as sent ({invoice.einvoicing_status}): "
                                   + refusal.split("; ", 1)[1])
        if not yes and not _confirmed(
            f"forget {item.source_path} ({item.invoice_number or '?'}, {item.state})?"
        ):
            raise CommandError(exitcodes.USAGE, "not_confirmed", "nothing forgotten")
        with open_outbox(folder, org) as outbox:
            outbox.forget(item.upload_sha256)
    if fmt == "json":
        click.echo(json.dumps({"forgotten": item.as_dict()}, indent=2, ensure_ascii=False))
    else:
        click.echo(f"forgotten: {item.source_path} ({item.invoice_number or '?'})")


@outbox_group.command("check")
@_state_option
@_format_option
def check_command(state: str | None, fmt: str) -> None:
    """Check the outbox database and the stored uploads; say what can be recovered."""
    folder = existing_state(state, fmt)
    with command_errors(fmt, local_folder(folder)):
        report = check(folder)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"outbox database: {report.database}; {report.items} entr(y/ies) readable, "
                   f"{len(report.sent)} sent")
        if report.database != "ok":
            for sent in report.sent:
                click.echo(f"  sent: {sent}")
        for problem in report.blob_problems:
            click.echo(f"  {problem}")
        if report.orphan_blobs:
            click.echo(f"  {report.orphan_blobs} stored upload(s) no entry refers to")
        if report.temporary_files:
            click.echo(f"  removed {report.temporary_files} leftover temporary file(s)")
        for advice in report.advice:
            click.echo(f"advice: {advice}")
        click.echo("ok" if report.ok else "needs attention")
    sys.exit(exitcodes.OK if report.ok else exitcodes.STATE)


@outbox_group.command("migrate")
@click.option("--to", "target", required=True, metavar="URL",
              help="The PostgreSQL outbox to copy into: postgresql://USER@HOST[:PORT]/DB.")
@_state_option
@_format_option
def migrate_command(target: str, state: str | None, fmt: str) -> None:
    """Copy a state folder's SQLite outbox (items, verdicts, history, stored uploads) into a
    PostgreSQL outbox. Run it again: what is there already is skipped. A row there that differs
    from the folder's stops it with nothing copied (exit 6). The folder is left as it was."""
    from .outbox_pg_migrate import migrate_from_sqlite

    folder = state_location(state)
    if not is_database_url(target):
        # Never the value itself: it may hold a password.
        raise click.BadParameter(not_a_database_url(target) or "not a postgresql:// URL",
                                 param_hint="--to")
    if is_database_url(folder):
        raise click.BadParameter("the outbox to copy must be a state folder (SQLite), not a "
                                 "database", param_hint="--state")
    assert isinstance(folder, Path)
    with command_errors(fmt, folder):
        report = migrate_from_sqlite(folder, target)
    if fmt == "json":
        click.echo(json.dumps({"from": str(folder), "to": describe(target), **report.as_dict()},
                              indent=2, ensure_ascii=False))
        return
    click.echo(f"copied from {folder} to the outbox {describe(target)}: {report.items} "
               f"invoice(s), {report.sources} source verdict(s), {report.history} history "
               f"entr(y/ies), {report.blobs} stored upload(s); already there: "
               f"{report.items_present} invoice(s), {report.sources_present} source verdict(s)")
    if report.missing_blobs:
        click.echo(f"  {len(report.missing_blobs)} stored upload(s) missing or corrupt in the "
                   "folder, not copied (rebuilt from their source when needed): "
                   + ", ".join(s[:12] for s in report.missing_blobs))


__all__ = ["outbox_group"]
