"""Commands of the transmission stage: send, status, inbox, sandbox (registered by facturflow.cli).

Exit codes: 0 every input sent or already sent (status/inbox: the command worked and, with
--validate, every download was valid); 1 something was rejected or failed; 2 usage or
configuration error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .errors import QontoError
from .outbox import Item, Outbox, OutboxBusyError, organisations
from .pipeline import SendOptions, SendSummary, refresh_status, send_invoices
from .qonto import QontoClient, QontoConfig

DEFAULT_STATE = ".facturflow"


def state_dir(option: Path | None) -> Path:
    """--state, else $FACTURFLOW_STATE, else ./.facturflow/."""
    return option or Path(os.environ.get("FACTURFLOW_STATE") or DEFAULT_STATE)


@contextmanager
def open_client(state: Path, *, say: bool = True) -> Iterator[QontoClient]:
    """A client from the environment; with no Qonto configuration, one on a private sandbox."""
    env_token_file = os.environ.get("QONTO_TOKEN_FILE")
    token_store = Path(env_token_file) if env_token_file else state / "oauth-tokens.json"
    try:
        config = QontoConfig.from_env(token_store=token_store)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if config.configured:
        with QontoClient(config) as client:
            yield client
        return
    from .sandbox import Sandbox, SandboxConfig

    box = Sandbox(SandboxConfig(state_dir=state / "sandbox"))
    with box:
        if say:
            click.echo(
                f"No Qonto configuration (QONTO_API_KEY or QONTO_ACCESS_TOKEN/REFRESH_TOKEN): "
                f"using a local sandbox at {box.base_url} (state in {state / 'sandbox'}); "
                "nothing reaches Qonto.",
                err=True,
            )
        config = QontoConfig.from_env(
            {}, base_url=box.base_url, api_key=box.api_key, token_store=token_store
        )
        with QontoClient(config) as client:
            yield client


class _Progress:
    """A progress bar per stage on a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)


def _print_summary(summary: SendSummary, dry_run: bool) -> None:
    for o in summary.outcomes:
        label = {"sent": "sent", "already_sent": "already sent", "rejected": "REJECTED",
                 "failed": "FAILED", "would_send": "would send"}[o.kind]
        extra = f" {o.invoice_number}" if o.invoice_number else ""
        ident = f" (invoice {o.invoice_id})" if o.invoice_id else ""
        status = f" [{o.einvoicing_status}]" if o.einvoicing_status else ""
        reason = f": {o.reason}" if o.reason and o.kind in ("rejected", "failed") else ""
        click.echo(f"{o.path}:{extra} {label}{ident}{status}{reason}")
        for finding in o.findings[1:6]:
            click.echo(f"    {finding}")
    if dry_run:
        click.echo(f"dry run: {summary.count('would_send')} would be sent, "
                   f"{summary.count('rejected')} rejected by validation")
        return
    failed = [o for o in summary.outcomes if o.kind == "failed"]
    click.echo(f"sent {summary.count('sent')}, already sent {summary.count('already_sent')}, "
               f"rejected by validation {summary.count('rejected')}, failed {len(failed)}")


@click.command("send")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--wait", is_flag=True, help="Poll until each invoice reaches a final status.")
@click.option("--dry-run", is_flag=True, help="Detect, validate and convert only; send nothing.")
@click.option("--state", "state", type=click.Path(path_type=Path), default=None,
              help="State folder (outbox, uploads); default $FACTURFLOW_STATE or ./.facturflow")
@click.option("--upload", type=click.Choice(["facturx", "xml"]), default="facturx",
              show_default=True, help="Upload a Factur-X PDF (made from XML input) or raw XML.")
@click.option("--rules", default=None, metavar="LIST", help="Rule sets for validation.")
@click.option("--timeout", "wait_timeout", type=float, default=600.0, show_default=True,
              help="With --wait: give up polling after this many seconds.")
@click.option("--poll-interval", type=float, default=5.0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def send_command(paths: tuple[Path, ...], wait: bool, dry_run: bool, state: Path | None,
                 upload: str, rules: str | None, wait_timeout: float, poll_interval: float,
                 fmt: str) -> None:
    """Validate invoices and send them through Qonto's PA, each exactly once."""
    folder = state_dir(state)
    options = SendOptions(upload="xml" if upload == "xml" else "facturx", wait=wait,
                          dry_run=dry_run, wait_timeout=wait_timeout,
                          poll_interval=poll_interval, rules=rules)
    try:
        with _Progress() as progress:
            if dry_run:
                summary = send_invoices(paths, None, folder, options, progress)
            else:
                with open_client(folder) as client:
                    summary = send_invoices(paths, client, folder, options, progress)
    except OutboxBusyError as exc:
        raise click.ClickException(exc.message) from exc
    except QontoError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_summary(summary, dry_run)
    sys.exit(0 if summary.ok else 1)


def _item_line(item: Item) -> str:
    event = item.latest_event
    last = f" last event {event.get('status_code')} at {event.get('timestamp')}" if event else ""
    status = f" [{item.einvoicing_status}]" if item.einvoicing_status else ""
    error = f": {item.error}" if item.error and item.state == "failed" else ""
    return (f"{item.source_path}: {item.invoice_number or '?'} {item.state}"
            f"{' invoice ' + item.invoice_id if item.invoice_id else ''}{status}{last}{error}")


@click.command("status")
@click.argument("refs", nargs=-1)
@click.option("--state", "state", type=click.Path(path_type=Path), default=None)
@click.option("--refresh", is_flag=True, help="Ask Qonto for the latest lifecycle events first.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def status_command(refs: tuple[str, ...], state: Path | None, refresh: bool, fmt: str) -> None:
    """Show each invoice's outbox state and lifecycle events (all, or by PATH, ID or number)."""
    folder = state_dir(state)
    rows: list[Item] = []
    for org in organisations(folder):
        with Outbox(folder, org, lock=False) as outbox:
            items = outbox.items() if not refs else [
                i for ref in refs for i in outbox.find(ref)
            ]
            if refresh:
                with open_client(folder, say=False) as client:
                    items = [refresh_status(client, outbox, i) if i.state == "sent" else i
                             for i in items]
            rows.extend(items)
    if fmt == "json":
        click.echo(json.dumps([i.as_dict() for i in rows], indent=2, ensure_ascii=False))
    else:
        for item in rows:
            click.echo(_item_line(item))
            for event in item.events:
                reason = f" {event.get('reason')}: {event.get('reason_message')}" if event.get(
                    "reason") else ""
                click.echo(f"    {event.get('timestamp')} {event.get('status_code')}{reason}")
        if not rows:
            click.echo("no invoice in the outbox" + (" matches" if refs else ""))
    sys.exit(0 if rows or not refs else 1)


@click.command("inbox")
@click.option("--download", "download", type=click.Path(path_type=Path), default=None,
              help="Save each received invoice's file in this folder.")
@click.option("--validate", "run_validation", is_flag=True,
              help="Run the validation stage on each received invoice.")
@click.option("--state", "state", type=click.Path(path_type=Path), default=None)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def inbox_command(download: Path | None, run_validation: bool, state: Path | None,
                  fmt: str) -> None:
    """List received supplier invoices; download and validate them."""
    from ..pdf import safe_output_path

    folder = state_dir(state)
    rows: list[dict[str, Any]] = []
    invalid = False
    try:
        with open_client(folder) as client:
            for invoice in client.iter_supplier_invoices():
                row: dict[str, Any] = {
                    "id": invoice.get("id"), "invoice_number": invoice.get("invoice_number"),
                    "supplier_name": invoice.get("supplier_name"),
                    "status": invoice.get("status"), "is_einvoice": invoice.get("is_einvoice"),
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
                        from ..validate import validate

                        report = validate(data)
                        row["valid"] = report.ok
                        row["findings"] = [f"{f.rule}: {f.message}" for f in report.fatal]
                        if report.error:
                            row["findings"].insert(0, report.error)
                        invalid = invalid or not report.ok
                rows.append(row)
    except QontoError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for row in rows:
            verdict = "" if row["valid"] is None else (" valid" if row["valid"] else " INVALID")
            saved = f" -> {row['file']}" if row["file"] else ""
            click.echo(f"{row['id']}: {row['invoice_number'] or '?'} from "
                       f"{row['supplier_name'] or '?'} [{row['status']}]{verdict}{saved}")
            for finding in row["findings"][:5]:
                click.echo(f"    {finding}")
        click.echo(f"{len(rows)} received invoice(s)")
    sys.exit(1 if invalid else 0)


def _check_sandbox_key(ctx: click.Context, param: click.Parameter,
                       value: str | None) -> str | None:
    if value is None:
        return None
    from .qonto import check_api_key

    try:
        return check_api_key(value, "--api-key")
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("--api-key ")) from None


@click.command("sandbox")
@click.option("--state", "state", type=click.Path(path_type=Path), default=None,
              help="Sandbox state folder (default: <state>/sandbox).")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port on 127.0.0.1 (default: any free one).")
@click.option("--api-key", default=None, callback=_check_sandbox_key,
              help="login:secret-key to accept (default: generated).")
@click.option("--staging-token", default=None,
              help="Require X-Qonto-Staging-Token like the real sandbox.")
@click.option("--fault-rate", type=click.FloatRange(0.0, 1.0), default=0.0,
              help="Share of requests that fail (0 to 1).")
@click.option("--seed", type=int, default=None, help="Seed of the fault injection.")
@click.option("--outcome", type=click.Choice(["delivered", "refused", "failed"]),
              default="delivered", show_default=True, help="Lifecycle after a send.")
def sandbox_command(state: Path | None, port: int, api_key: str | None,
                    staging_token: str | None, fault_rate: float, seed: int | None,
                    outcome: str) -> None:
    """Serve the local Qonto PA sandbox in the foreground (Ctrl-C stops it).

    Exit codes: 2 when the chosen --port is taken or not allowed (or an option is malformed),
    6 when another sandbox serves the same state folder or its state cannot be read.
    """
    import errno

    from .. import exitcodes
    from .errors import SandboxBusyError
    from .sandbox import FaultPlan, Sandbox, SandboxConfig

    folder = state or state_dir(None) / "sandbox"
    config = SandboxConfig(state_dir=folder, port=port, api_key=api_key,
                           staging_token=staging_token, outcome=outcome,
                           faults=FaultPlan(rate=fault_rate, seed=seed))
    try:
        box = Sandbox(config)
    except SandboxBusyError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exitcodes.STATE)
    except (OSError, ValueError) as exc:  # unreadable or corrupt state, unwritable folder
        click.echo(f"error: cannot use the sandbox state folder {folder}: {exc}", err=True)
        sys.exit(exitcodes.STATE)
    try:
        box.start()
    except OSError as exc:
        # The user chose the port (0 never collides): a usage error, like any bad option.
        why = {errno.EADDRINUSE: "is already in use",
               errno.EACCES: "is not allowed for this user"}.get(exc.errno or 0,
                                                                 f"cannot be used ({exc})")
        click.echo(f"error: port {port} on {config.host} {why}: choose another --port, or "
                   "leave it out for any free one", err=True)
        sys.exit(exitcodes.USAGE)
    click.echo(f"sandbox listening on {box.base_url} (state in {folder})")
    for key, value in box.env().items():
        click.echo(f"export {key}={value}")
    click.echo(f"# OAuth: client id {box.client_id}, client secret {box.client_secret}")
    click.echo("# the test hooks (/_sandbox/...) need the API key above as Authorization")
    with contextlib.suppress(KeyboardInterrupt):
        box.serve_forever()


__all__ = ["inbox_command", "sandbox_command", "send_command", "status_command"]
