"""Commands of the transmission stage: send, status, sandbox (registered by facturflow.cli;
`inbox` is in inbox_cli, `register` and `doctor` in register_cli).

Exit codes (facturflow.exitcodes), mapped from exceptions in one place (`command_errors`):
0 every input sent or already sent (with --wait: approved or paid); 1 an input was rejected by
validation, failed to send, or (--wait, status) was refused, rejected, not delivered;
2 usage; 3 configuration or authentication (bad QONTO_* settings, 401/403, 404 on an invoice
the outbox knows); 4 Qonto unreachable or failing; 5 --wait gave up with invoices still
pending; 6 the state folder cannot be used (corrupt outbox, locked, read-only, disk full);
130 interrupted (Ctrl-C). Errors are one line `error: ...` on stderr, or with --format json
a JSON object on stdout: {"error": {"code", "type", "message", "exit_code"}}.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from .. import exitcodes
from ..cli_help import AliasedOption
from ..clitypes import FiniteFloatRange
from ..errors import TransmitError
from ..inputs import cli_limits, limit_options
from ..lifecycle import OUTCOME_LABELS, describe_status
from .errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    OrganisationUnknownError,
    OutboxLostError,
    PermissionDeniedError,
    QontoError,
    RateLimitedError,
    SandboxBusyError,
    ServerError,
    TransportError,
)
from .outbox import (
    Item,
    OutboxBusyError,
    OutboxCorruptError,
    StateFolderError,
    StoredUploadError,
    state_error,
)
from .outbox_pg import (
    DEFAULT_LEASE_SECONDS,
    DatabaseConfigError,
    DatabaseUnavailableError,
    MigrateConflictError,
    is_database_url,
    not_a_database_url,
)
from .pipeline import (
    DEFAULT_LOOKBACK_DAYS,
    MAX_LOOKBACK_DAYS,
    SendOptions,
    SendSummary,
    _organization,
    refresh_status,
    send_invoices,
)
from .qonto import QontoClient, QontoConfig
from .store import OutboxStore, StateLocation, open_outbox, organisations


def default_state_dir() -> Path:
    """The user's own state folder for facturflow (platformdirs: $XDG_STATE_HOME/facturflow or
    ~/.local/state/facturflow on Linux, ~/Library/Application Support/facturflow on macOS,
    %LOCALAPPDATA%\\facturflow on Windows): the same whatever the current folder."""
    import platformdirs

    return Path(platformdirs.user_state_dir("facturflow", appauthor=False))


def state_dir(option: Path | None) -> Path:
    """--state, else $FACTURFLOW_STATE, else the user's state folder (default_state_dir()).
    The outbox in it keys every record by the organisation's id. A $FACTURFLOW_STATE naming
    a database (postgresql://...) leaves the local files (tokens, sandbox) in the user's
    state folder."""
    env = os.environ.get("FACTURFLOW_STATE")
    if not option and (problem := not_a_database_url(env)):
        raise click.UsageError(f"FACTURFLOW_STATE: {problem}")
    return option or Path(env if env and not is_database_url(env) else default_state_dir())


def state_location(option: str | None) -> StateLocation:
    """Where the outbox is, for the commands that can use a shared one (send, status, outbox):
    --state, else $FACTURFLOW_STATE, else the user's state folder; a postgresql:// URL stays a
    string, anything else is a folder."""
    value = option or os.environ.get("FACTURFLOW_STATE") or ""
    problem = not_a_database_url(value)
    if problem:
        raise click.UsageError(f"{'--state' if option else 'FACTURFLOW_STATE'}: {problem}")
    if is_database_url(value):
        return value
    return Path(value) if value else default_state_dir()


def local_folder(state: StateLocation) -> Path:
    """The folder of a state's local files (OAuth tokens, the private sandbox): the state
    folder itself, or the user's state folder when the outbox is a database."""
    return default_state_dir() if is_database_url(state) else Path(state)


def lease_seconds(option: float | None) -> float:
    """--lease-seconds, else $FACTURFLOW_LEASE_SECONDS, else DEFAULT_LEASE_SECONDS."""
    if option is not None:
        return option
    raw = os.environ.get("FACTURFLOW_LEASE_SECONDS", "").strip()
    if not raw:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86_400:
        raise click.UsageError(f"FACTURFLOW_LEASE_SECONDS must be a number of seconds from 0 "
                               f"(excluded) to 86400, not {raw!r}")
    return value


STATE_HELP = ("Where the outbox is: a state folder (SQLite), or postgresql://USER@HOST/DB for an "
              "outbox shared by several senders; default $FACTURFLOW_STATE, else the user's "
              "state folder (e.g. ~/.local/state/facturflow).")


def _refuse_missing(folder: Path, fmt: str) -> None:
    """A state folder that does not exist, for a command that reads the state without making
    it (a mistyped --state or FACTURFLOW_STATE, or nothing sent from here yet): an error
    (exit 6) naming it, not an empty outbox."""
    if folder.exists():
        return
    if any(p.exists() and not p.is_dir() for p in folder.parents):
        message = f"the state folder {folder} is under a file"
    else:
        message = (f"the state folder {folder} does not exist: nothing was sent with it "
                   "(--state or FACTURFLOW_STATE names the folder `facturflow send` used)")
    emit_error(CommandError(exitcodes.STATE, "no_state_folder", message, "StateFolderError"),
               fmt)


def existing_state(option: str | None, fmt: str) -> StateLocation:
    """state_location(option), for status and the outbox commands: a folder must exist (see
    _refuse_missing); a database URL is the database's to answer."""
    where = state_location(option)
    if not is_database_url(where):
        _refuse_missing(Path(where), fmt)
    return where


def existing_state_dir(option: Path | None, fmt: str) -> Path:
    """state_dir(option), which must exist (see _refuse_missing)."""
    folder = state_dir(option)
    _refuse_missing(folder, fmt)
    return folder


def lookback_days(option: int | None) -> int:
    """--lookback-days, else $FACTURFLOW_LOOKBACK_DAYS, else DEFAULT_LOOKBACK_DAYS."""
    if option is not None:
        return option
    raw = os.environ.get("FACTURFLOW_LOOKBACK_DAYS", "").strip()
    if not raw:
        return DEFAULT_LOOKBACK_DAYS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LOOKBACK_DAYS:
        raise click.UsageError(f"FACTURFLOW_LOOKBACK_DAYS must be a whole number of days from 1 "
                               f"to {MAX_LOOKBACK_DAYS}, not {raw!r}")
    return int(raw)


def env_config(state: Path) -> QontoConfig:
    """The Qonto settings of the environment, OAuth tokens kept in $QONTO_TOKEN_FILE, else in
    the state folder; a malformed setting raises ConfigError (a ValueError)."""
    env_token_file = os.environ.get("QONTO_TOKEN_FILE")
    token_store = Path(env_token_file) if env_token_file else state / "oauth-tokens.json"
    return QontoConfig.from_env(token_store=token_store)


def _command_config(state: Path) -> QontoConfig:
    """env_config, a malformed setting as a usage error caused by the ValueError (which
    command_errors reports as a configuration error, exit 3)."""
    try:
        return env_config(state)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@contextmanager
def configured_client(state: Path) -> Iterator[QontoClient | None]:
    """A client when Qonto is configured in the environment, else None (no private sandbox)."""
    config = _command_config(state)
    if not config.configured:
        yield None
        return
    with QontoClient(config) as client:
        yield client


@contextmanager
def open_client(state: Path, *, say: bool = True) -> Iterator[QontoClient]:
    """A client from the environment; with no Qonto configuration, one on a private sandbox."""
    config = _command_config(state)
    if config.configured:
        with QontoClient(config) as client:
            yield client
        return
    from .sandbox import OUTCOMES, Sandbox, SandboxConfig

    # The private sandbox's recipients approve by default, so that `send --wait` ends; any
    # other outcome is one variable away for trying the unhappy paths.
    outcome = os.environ.get("FACTURFLOW_SANDBOX_OUTCOME") or "approved"
    if outcome not in OUTCOMES:
        raise click.UsageError(
            f"FACTURFLOW_SANDBOX_OUTCOME={outcome!r} is not one of {', '.join(sorted(OUTCOMES))}"
        ) from ValueError(outcome)
    box = Sandbox(SandboxConfig(state_dir=state / "sandbox", outcome=outcome))
    with box:
        if say:
            click.echo(
                f"No Qonto configuration (QONTO_API_KEY or QONTO_ACCESS_TOKEN/REFRESH_TOKEN): "
                f"using a local sandbox at {box.base_url} (state in {state / 'sandbox'}); "
                "nothing reaches Qonto.",
                err=True,
            )
        config = QontoConfig.from_env(
            {}, base_url=box.base_url, api_key=box.api_key, token_store=config.token_store
        )
        with QontoClient(config) as client:
            yield client


# Exception -> (exit code, error code for --format json). The first class that matches wins:
# a subclass goes before its base. Mapping a new exception is one line here.
EXIT_CODES: list[tuple[type[BaseException], int, str]] = [
    (DatabaseConfigError, exitcodes.CONFIG, "state_database_config"),
    (DatabaseUnavailableError, exitcodes.STATE, "state_database"),
    (MigrateConflictError, exitcodes.STATE, "migrate_conflict"),
    (OutboxBusyError, exitcodes.STATE, "state_locked"),
    (OutboxCorruptError, exitcodes.STATE, "state_corrupt"),
    (StateFolderError, exitcodes.STATE, "state_unwritable"),
    (StoredUploadError, exitcodes.STATE, "stored_upload"),
    (OutboxLostError, exitcodes.STATE, "outbox_lost"),
    (OrganisationUnknownError, exitcodes.CONFIG, "organisation_unknown"),
    (SandboxBusyError, exitcodes.STATE, "sandbox_busy"),
    (ConfigError, exitcodes.CONFIG, "config"),
    (AuthenticationError, exitcodes.CONFIG, "authentication"),
    (PermissionDeniedError, exitcodes.CONFIG, "permission"),
    (NotFoundError, exitcodes.CONFIG, "not_found"),
    (TransportError, exitcodes.SERVICE, "unreachable"),
    (RateLimitedError, exitcodes.SERVICE, "rate_limited"),
    (ServerError, exitcodes.SERVICE, "server_error"),
    (QontoError, exitcodes.SERVICE, "qonto_error"),
    (TransmitError, exitcodes.INVALID, "transmit_error"),
]
_STATE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class CommandError(Exception):
    """An error already classified: exit code, machine code and one-line message."""

    def __init__(self, exit_code: int, code: str, message: str, kind: str = "",
                 **extra: Any) -> None:
        super().__init__(message)
        self.exit_code, self.code, self.message, self.kind = exit_code, code, message, kind
        self.extra = extra


def classify_error(exc: BaseException, state: Path | None = None) -> CommandError:
    """The exit code, code and one-line message of an exception (see EXIT_CODES)."""
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return CommandError(exitcodes.INTERRUPTED, "interrupted", "interrupted (Ctrl-C)",
                            "KeyboardInterrupt")
    if isinstance(exc, click.UsageError) and isinstance(exc.__cause__, ValueError):
        # QontoConfig.from_env's complaint about the QONTO_* settings, as open_client raises it
        return CommandError(exitcodes.CONFIG, "config", f"configuration: {exc.message}",
                            "ConfigError")
    if isinstance(exc, sqlite3.Error) or (
        isinstance(exc, OSError) and (exc.errno in _STATE_ERRNOS or _inside(exc, state))
    ):
        exc = state_error(exc, state or Path("."))
    elif isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename else ""
        return CommandError(exitcodes.USAGE, "os_error", f"{name}{exc.strerror or exc}",
                            type(exc).__name__)
    for cls, code, name in EXIT_CODES:
        if isinstance(exc, cls):
            message = getattr(exc, "message", None) or str(exc)
            if isinstance(exc, NotFoundError):
                message += (" (an invoice the outbox knows is unknown to Qonto: are the QONTO_* "
                            "settings those of the organisation that sent it?)")
            return CommandError(code, name, message, type(exc).__name__)
    raise exc


def _inside(exc: OSError, state: Path | None) -> bool:
    if state is None or not exc.filename:
        return False
    try:
        return Path(os.fsdecode(exc.filename)).resolve().is_relative_to(state.resolve())
    except (OSError, ValueError):
        return False


def emit_error(error: CommandError, fmt: str) -> NoReturn:
    """Print the error (stderr line, or a JSON object on stdout) and exit with its code."""
    if fmt == "json":
        body: dict[str, Any] = {"code": error.code, "type": error.kind,
                                "message": error.message, "exit_code": error.exit_code}
        body.update(error.extra)
        click.echo(json.dumps({"error": body}, indent=2, ensure_ascii=False))
    else:
        click.echo(f"error: {error.message}", err=True)
    sys.exit(error.exit_code)


@contextmanager
def command_errors(fmt: str, state: Path | None = None,
                   interrupted: Callable[[CommandError], None] | None = None) -> Iterator[None]:
    """Turn every expected failure of a transmit command into one line (or one JSON object)
    and its exit code; `interrupted` may add to the report of a Ctrl-C (what had finished)."""
    try:
        yield
    except (click.exceptions.Exit, click.Abort):
        raise
    except click.UsageError as exc:
        if not isinstance(exc.__cause__, ValueError):
            raise
        emit_error(classify_error(exc, state), fmt)
    except KeyboardInterrupt as exc:
        error = classify_error(exc, state)
        if interrupted is not None:
            with contextlib.suppress(Exception):
                interrupted(error)
        emit_error(error, fmt)
    except (CommandError, TransmitError, sqlite3.Error, OSError) as exc:
        emit_error(classify_error(exc, state), fmt)


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


def _print_summary(summary: SendSummary, dry_run: bool, waited: bool = False) -> None:
    for o in summary.outcomes:
        label = {"sent": "sent", "already_sent": "already sent", "rejected": "REJECTED",
                 "failed": "FAILED", "would_send": "would send"}[o.kind]
        extra = f" {o.invoice_number}" if o.invoice_number else ""
        ident = f" (invoice {o.invoice_id})" if o.invoice_id else ""
        if o.final is not None:  # --wait: the final outcome (or pending), with its label
            sent = "already sent" if o.kind == "already_sent" else "sent"
            click.echo(f"{o.path}:{extra} {sent}{ident}, {o.final_text}")
            continue
        status = f" [{describe_status(o.einvoicing_status)}]" if o.einvoicing_status else ""
        reason = f": {o.reason}" if o.reason and o.kind in ("rejected", "failed") else ""
        click.echo(f"{o.path}:{extra} {label}{ident}{status}{reason}")
        for finding in o.findings[1:6]:
            click.echo(f"    {finding}")
    if dry_run:
        click.echo(f"dry run: {summary.count('would_send')} would be sent, "
                   f"{summary.count('already_sent')} already sent, "
                   f"{summary.count('rejected')} rejected by validation, "
                   f"{summary.count('failed')} would be refused")
        return
    failed = [o for o in summary.outcomes if o.kind == "failed"]
    line = (f"sent {summary.count('sent')}, already sent {summary.count('already_sent')}, "
            f"rejected by validation {summary.count('rejected')}, failed {len(failed)}")
    if waited:
        finals = [o.final for o in summary.outcomes if o.final]
        line += "; " + ", ".join(f"{OUTCOME_LABELS[k]} {finals.count(k)}"
                                 for k in OUTCOME_LABELS if k in finals)
    click.echo(line)
    if summary.pending:
        click.echo(f"still pending when --wait gave up (exit {exitcodes.PENDING}): "
                   + ", ".join(o.invoice_number or o.path for o in summary.pending))


def _interrupted_send(paths: tuple[Path, ...],
                      folder: StateLocation) -> Callable[[CommandError], None]:
    """After Ctrl-C: say what each input became (the outbox is consistent), for the report."""
    def report(error: CommandError) -> None:
        from ..inputs import expand_inputs

        wanted = {str(p) for p in expand_inputs(Path(p) for p in paths)}
        rows: list[dict[str, Any]] = []
        for org in organisations(folder):
            with open_outbox(folder, org, lock=False) as outbox:
                rows.extend({"path": i.source_path, "invoice_number": i.invoice_number,
                             "state": i.state, "invoice_id": i.invoice_id}
                            for i in outbox.items() if i.source_path in wanted)
        done = sum(1 for r in rows if r["state"] == "sent")
        error.message = (f"interrupted (Ctrl-C): {done} of {len(wanted)} input(s) sent; "
                         "running the same command again sends the rest, none twice")
        error.extra["invoices"] = rows
        for row in rows:
            click.echo(f"{row['path']}: {row['invoice_number'] or '?'} {row['state']}", err=True)
    return report


@click.command("send")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--wait", is_flag=True, help="Poll until each invoice is approved, paid, refused, "
              "rejected or not delivered (exit 5 if --wait-timeout runs out first).")
@click.option("--dry-run", is_flag=True, help="Detect, validate and convert only; send nothing.")
@click.option("--state", "state", default=None, metavar="FOLDER|URL", help=STATE_HELP)
@click.option("--upload", type=click.Choice(["facturx", "xml"]), default="facturx",
              show_default=True, help="Upload a Factur-X PDF (made from XML input) or raw XML.")
@click.option("--rules", default=None, metavar="LIST", help="Rule sets for validation.")
@click.option("--wait-timeout", "--timeout", "wait_timeout",
              type=FiniteFloatRange(0, 31_536_000), default=600.0,
              show_default=True, cls=AliasedOption,
              help="With --wait: give up polling after this many seconds (exit 5). Was "
              "--timeout, still accepted; `validate --timeout` is a per-file time limit.")
@click.option("--poll-interval", type=FiniteFloatRange(0.05, 86_400), default=5.0,
              show_default=True, help="With --wait: seconds between two polls of Qonto.")
@click.option("--lookback-days", "lookback", type=click.IntRange(1, MAX_LOOKBACK_DAYS),
              default=None, help="How far back to list Qonto's client invoices for invoice "
              "numbers it already has (default $FACTURFLOW_LOOKBACK_DAYS, else "
              f"{DEFAULT_LOOKBACK_DAYS}; widened to the oldest issue date sent).")
@click.option("--lease-seconds", "lease", type=FiniteFloatRange(0.5, 86_400), default=None,
              metavar="SECONDS",
              help="With a PostgreSQL outbox: how long an invoice claimed by a sender that died "
              "stays its own before another sender takes it over (renewed while the sender "
              f"runs); default $FACTURFLOW_LEASE_SECONDS, else {DEFAULT_LEASE_SECONDS:g}.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="text: a line per invoice; json: one document with every invoice's outcome.")
@limit_options
def send_command(paths: tuple[Path, ...], wait: bool, dry_run: bool, state: str | None,
                 upload: str, rules: str | None, wait_timeout: float, poll_interval: float,
                 lookback: int | None, lease: float | None, fmt: str,
                 max_size: int | None = None, max_nodes: int | None = None) -> None:
    """Validate invoices and send them through Qonto's PA, each exactly once."""
    from ..errors import UnknownRuleSetError

    where = state_location(state)
    folder = local_folder(where)
    with command_errors(fmt, folder):
        try:
            options = SendOptions(upload="xml" if upload == "xml" else "facturx", wait=wait,
                                  dry_run=dry_run, wait_timeout=wait_timeout,
                                  poll_interval=poll_interval, rules=rules,
                                  lookback_days=lookback_days(lookback),
                                  lease_seconds=lease_seconds(lease),
                                  limits=cli_limits(max_size, max_nodes))
        except UnknownRuleSetError as exc:
            raise CommandError(exitcodes.USAGE, "usage", f"--rules {rules!r}: {exc.message}",
                               type(exc).__name__) from None
    with command_errors(fmt, folder, _interrupted_send(paths, where)), _Progress() as progress:
        if dry_run:  # reads only: Qonto when configured, else the outbox alone
            with configured_client(folder) as maybe:
                summary = send_invoices(paths, maybe, where, options, progress)
        else:
            with open_client(folder) as client:
                summary = send_invoices(paths, client, where, options, progress)
    if fmt == "json":
        click.echo(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_summary(summary, dry_run, wait and not dry_run)
    sys.exit(summary.exit_code)


def _item_line(item: Item) -> str:
    event = item.latest_event
    last = (f" last event {describe_status(event.get('status_code'))} at "
            f"{event.get('timestamp')}" if event else "")
    status = f" [{describe_status(item.einvoicing_status)}]" if item.einvoicing_status else ""
    error = f": {item.error}" if item.error and item.state == "failed" else ""
    outcome = f", {item.verdict.describe()}" if item.state == "sent" else ""
    return (f"{item.source_path}: {item.invoice_number or '?'} {item.state}"
            f"{' invoice ' + item.invoice_id if item.invoice_id else ''}{status}{last}{error}"
            f"{outcome}")


def _troubled(item: Item) -> bool:
    """Failed to send, or refused, rejected, not delivered downstream."""
    return item.state == "failed" or (item.state == "sent" and item.verdict.negative)


@click.command("status")
@click.argument("refs", nargs=-1)
@click.option("--state", "state", default=None, metavar="FOLDER|URL", help=STATE_HELP)
@click.option("--refresh", is_flag=True, help="Ask Qonto for the latest lifecycle events first.")
@click.option("--watch", is_flag=True, help="Poll Qonto until every listed sent invoice is final "
              "(approved, paid, refused, rejected, not delivered), printing each lifecycle "
              "transition as it happens (JSON lines with --format json).")
@click.option("--timeout", "watch_timeout", type=FiniteFloatRange(0, 7 * 24 * 3600),
              default=600.0, show_default=True,
              help="With --watch: give up after this many seconds (exit 5).")
@click.option("--poll-interval", type=FiniteFloatRange(0.05, 3600), default=5.0,
              show_default=True, help="With --watch: seconds between two polls of Qonto (each "
              "poll asks once per invoice not yet final; Qonto's quota is shared).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="text: a line per invoice; json: the rows (JSON lines with --watch).")
def status_command(refs: tuple[str, ...], state: str | None, refresh: bool, watch: bool,
                   watch_timeout: float, poll_interval: float, fmt: str) -> None:
    """Show each invoice's outbox state and lifecycle events (all, or by PATH, ID or number).

    Exit 1 when a listed invoice failed or was refused, rejected or not delivered (or a REF
    matches nothing); 3 or 4 when --refresh or --watch cannot ask Qonto; 5 when --watch gave up
    with invoices still pending; 6 when the state folder does not exist or the outbox is
    unusable; 130 Ctrl-C.
    """
    where = existing_state(state, fmt)
    folder = local_folder(where)
    if watch:
        _watch(refs, where, watch_timeout, poll_interval, fmt)
    rows: list[Item] = []
    with command_errors(fmt, folder):
        orgs = organisations(where)
        with contextlib.ExitStack() as stack:
            client = stack.enter_context(open_client(folder, say=False)) if (
                refresh and orgs) else None
            mine = _organization(client) if client is not None else None
            for org in orgs:
                with open_outbox(where, org, lock=False) as outbox:
                    items = outbox.items() if not refs else [
                        i for ref in refs for i in outbox.find(ref)
                    ]
                    if client is not None and org == mine:  # other organisations' ids 404
                        items = [refresh_status(client, outbox, i) if i.state == "sent" else i
                                 for i in items]
                    rows.extend(items)
    if fmt == "json":
        click.echo(json.dumps([i.as_dict() for i in rows], indent=2, ensure_ascii=False))
    else:
        for item in rows:
            click.echo(_item_line(item))
            for event in item.events:
                click.echo(f"    {event.get('timestamp')} {describe_status(event)}")
        if not rows:
            click.echo("no invoice in the outbox" + (" matches" if refs else ""))
    troubled = any(_troubled(i) for i in rows)
    sys.exit(exitcodes.INVALID if troubled or (refs and not rows) else exitcodes.OK)


def _watch_event(item: Item, event: dict[str, Any] | None, fmt: str, latest: bool) -> None:
    """One transition: a new lifecycle event of `item` (None: its einvoicing_status changed);
    `latest` when it is the item's latest, the one its outcome (final or not) is read from."""
    name = item.invoice_number or item.source_path
    verdict = item.verdict
    final = verdict.final and latest
    if fmt == "json":
        row: dict[str, Any] = {
            "type": "transition", "invoice_number": item.invoice_number,
            "invoice_id": item.invoice_id, "source_path": item.source_path,
            "status_code": event.get("status_code") if event else None,
            "label": describe_status(event.get("status_code")) if event else None,
            "reason": event.get("reason") if event else None,
            "reason_message": event.get("reason_message") if event else None,
            "timestamp": event.get("timestamp") if event else None,
            "einvoicing_status": item.einvoicing_status, "final": final,
            "outcome": verdict.outcome if latest else None,
            "outcome_text": verdict.describe() if latest else None,
        }
        click.echo(json.dumps(row, ensure_ascii=False))
    else:
        what = (f"{event.get('timestamp')} {describe_status(event)}" if event else
                f"einvoicing_status {describe_status(item.einvoicing_status)}")
        click.echo(f"{name}: {what}" + (f" -> final: {verdict.describe()}" if final else ""))
    sys.stdout.flush()


def _watch(refs: tuple[str, ...], where: StateLocation, timeout: float, interval: float,
           fmt: str) -> NoReturn:
    """`status --watch`: poll the listed sent invoices until each is final, printing each
    lifecycle event (and einvoicing_status change) the first time it is seen; the events
    known before the watch are printed first. Exit 1 if one ends refused, rejected or not
    delivered, 5 at --timeout with some still pending, 130 on Ctrl-C."""
    deadline = time.monotonic() + timeout
    watched: dict[str, tuple[OutboxStore, Item]] = {}  # upload sha -> (its outbox, latest item)
    shown: dict[str, tuple[list[Any], str | None]] = {}
    matched: list[Item] = []

    def show(item: Item) -> None:
        events, status = shown.get(item.upload_sha256, ([], None))
        fresh = [e for e in sorted(item.events, key=lambda e: (
            str(e.get("timestamp") or ""), int(e.get("status_code") or 0))) if e not in events]
        for n, event in enumerate(fresh, 1):
            events = [*events, event]
            shown[item.upload_sha256] = (events, status)
            _watch_event(item, event, fmt, latest=n == len(fresh))
        if not fresh and item.einvoicing_status != status and (
                status is not None or not item.events):
            _watch_event(item, None, fmt, latest=True)
        shown[item.upload_sha256] = (events, item.einvoicing_status)

    def finish(code: int, message: str) -> NoReturn:
        if fmt == "json":
            click.echo(json.dumps({"type": "done", "exit_code": code, "message": message,
                                   "pending": pending()}, ensure_ascii=False))
        else:
            click.echo(("error: " if code == exitcodes.INTERRUPTED else "") + message,
                       err=code == exitcodes.INTERRUPTED)
        sys.exit(code)

    def pending() -> list[str]:
        return [i.invoice_number or i.source_path for _, i in watched.values() if not i.final]

    folder = local_folder(where)
    with command_errors(fmt, folder), contextlib.ExitStack() as stack:
        orgs = organisations(where)
        client = stack.enter_context(open_client(folder, say=False)) if orgs else None
        mine = _organization(client) if client is not None else None
        for org in orgs:
            outbox = stack.enter_context(open_outbox(where, org, lock=False))
            items = outbox.items() if not refs else [i for r in refs for i in outbox.find(r)]
            matched.extend(items)
            for item in items:
                if item.state == "sent" and org == mine:  # other organisations' ids 404
                    watched[item.upload_sha256] = (outbox, item)
        failed = [i.invoice_number or i.source_path for i in matched if i.state == "failed"]
        if not watched:
            finish(exitcodes.INVALID if (refs and not matched) or failed else exitcodes.OK,
                   "no sent invoice to watch" + (f" (failed to send: {', '.join(failed)})"
                                                 if failed else ""))
        try:
            while True:
                for sha, (outbox, item) in list(watched.items()):
                    if not (item.final and sha in shown):
                        assert client is not None
                        item = refresh_status(client, outbox, item)
                        watched[sha] = (outbox, item)
                    show(item)
                still = pending()
                if not still:
                    troubled = [i for _, i in watched.values() if i.verdict.negative]
                    finish(exitcodes.INVALID if troubled or failed else exitcodes.OK,
                           f"all {len(watched)} invoice(s) final"
                           + (f", {len(troubled)} refused, rejected or not delivered"
                              if troubled else "")
                           + (f"; failed to send: {', '.join(failed)}" if failed else ""))
                left = deadline - time.monotonic()
                if left <= 0:
                    finish(exitcodes.PENDING, f"--timeout reached with {len(still)} invoice(s) "
                           f"still pending (exit {exitcodes.PENDING}): {', '.join(still)}")
                time.sleep(min(interval, left))
        except KeyboardInterrupt:
            finish(exitcodes.INTERRUPTED, "interrupted (Ctrl-C); still pending: "
                   + ", ".join(pending()))


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
@click.option("--fault-rate", type=FiniteFloatRange(0.0, 1.0), default=0.0,
              help="Share of requests that fail (0 to 1).")
@click.option("--seed", type=int, default=None, help="Seed of the fault injection.")
@click.option("--outcome", type=click.Choice(["delivered", "approved", "refused", "paid",
                                              "disputed", "rejected", "failed",
                                              "not_delivered"]),
              default="delivered", show_default=True, help="Lifecycle after a send.")
@click.option("--webhook-url", default=None, metavar="URL",
              help="POST a signed v1/client-invoices event here on every lifecycle change "
                   "(e.g. the URL `facturflow webhook serve` prints).")
@click.option("--webhook-secret-env", default=None, metavar="NAME",
              help="Environment variable holding the secret the webhooks are signed with.")
def sandbox_command(state: Path | None, port: int, api_key: str | None,
                    staging_token: str | None, fault_rate: float, seed: int | None,
                    outcome: str, webhook_url: str | None,
                    webhook_secret_env: str | None) -> None:
    """Serve the local Qonto PA sandbox in the foreground (Ctrl-C stops it).

    Exit codes: 2 when the chosen --port is taken or not allowed (or an option is malformed),
    6 when another sandbox serves the same state folder or its state cannot be read.
    """
    import errno

    from .. import exitcodes
    from .errors import SandboxBusyError
    from .sandbox import FaultPlan, Sandbox, SandboxConfig

    folder = state or state_dir(None) / "sandbox"
    webhook_secret = None
    if webhook_url is not None:
        if not webhook_url.startswith(("http://", "https://")):
            raise click.BadParameter("must be an http:// or https:// URL",
                                     param_hint="--webhook-url")
        webhook_secret = os.environ.get(webhook_secret_env or "", "")
        if not webhook_secret:
            raise click.UsageError("--webhook-url needs --webhook-secret-env NAME, the name of "
                                   "a non-empty environment variable holding the secret")
    config = SandboxConfig(state_dir=folder, port=port, api_key=api_key,
                           staging_token=staging_token, outcome=outcome,
                           faults=FaultPlan(rate=fault_rate, seed=seed),
                           webhook_url=webhook_url, webhook_secret=webhook_secret)
    try:
        box = Sandbox(config)
    except SandboxBusyError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exitcodes.STATE)
    except (OSError, ValueError) as exc:  # unreadable or corrupt state, unwritable folder
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        if folder.exists() and not folder.is_dir():
            why = "it is a file, not a folder"
        click.echo(f"error: cannot use the sandbox state folder {folder}: {why}", err=True)
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
    if webhook_url:
        click.echo(f"# lifecycle webhooks are POSTed to {webhook_url}")
    with contextlib.suppress(KeyboardInterrupt):
        box.serve_forever()


__all__ = ["sandbox_command", "send_command", "status_command"]
