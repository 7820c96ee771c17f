"""The command line: thin; parses arguments, calls the library, prints, sets the exit code.

Exit codes (facturflow.exitcodes): 0 every input valid (or the command succeeded); 1 at least
one invalid input or a failed send; 2 a usage error or an input that cannot be read; 130 Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from . import __version__, exitcodes
from .clitypes import FiniteFloatRange
from .detection import detect
from .errors import FacturflowError
from .inputs import cli_limits, limit_options
from .xmlsafe import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .rules import RulePack, RuleSelection
    from .validation.report import Report

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


class _LazyGroup(click.Group):
    """A group whose later-stage commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def invoke(self, ctx: click.Context) -> Any:
        # Whatever a command was doing when Ctrl-C came (a prompt, a report being printed, a
        # phase no command handles itself): exit 130, never click's "Aborted!" with exit 1,
        # which means "invalid". Commands that have something to report catch it first.
        # A file name of undecodable bytes reaches reports as a surrogate-escaped str: standard
        # output writes it back as its own bytes (Python does only under the C locale) rather
        # than failing the whole report with a UnicodeEncodeError.
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stdout.reconfigure(errors=_NAMES)  # type: ignore[union-attr]
        # SIGTERM (a CI job cancelled, `timeout`, systemd, docker stop) is handled as Ctrl-C:
        # the default action killed the parent alone, leaving validate's and convert's worker
        # processes orphaned for ever, and nothing of what had finished was reported.
        previous = _terminate_as_interrupt()
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort) as exc:
            # click turns Ctrl-C at a prompt into Abort; an Abort for another reason (end of
            # input at a prompt) keeps click's meaning.
            if isinstance(exc, click.Abort) and not isinstance(exc.__context__, KeyboardInterrupt):
                raise
            click.echo("error: interrupted (Ctrl-C)", err=True)
            sys.exit(exitcodes.INTERRUPTED)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY_COMMANDS.get(cmd_name)
        if target is None:
            found = super().get_command(ctx, cmd_name)
            if found is not None:
                _document(found, cmd_name)
            return found
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        _document(command, cmd_name)
        return command

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self.epilog is None:
            from .cli_help import epilog

            self.epilog = epilog(())
        super().format_epilog(ctx, formatter)


def _document(command: click.Command, name: str) -> None:
    """Exit codes and examples at the end of the command's --help (facturflow.cli_help)."""
    from .cli_help import document

    document(command, (name,))


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="facturflow")
def main() -> None:
    """Detect, validate, convert and send French e-invoices (Factur-X, UBL, CII).

    Run `facturflow COMMAND --help` for what a command does, its options, its exit codes and
    examples. Reports for people and machines: `facturflow validate --help`.
    """


@main.command("detect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="text: one line per input; json: a list of {path, container, syntax, profile}.",
)
def detect_command(paths: tuple[Path, ...], fmt: str) -> None:
    """Say what each input is: container, syntax and profile."""
    from .inputs import expand_inputs

    results: list[dict[str, str]] = []
    failed = False
    for path in expand_inputs(paths):
        try:
            document = detect(path, lifecycle=True)
        except FacturflowError as exc:
            failed = True
            if fmt == "json":
                results.append({"path": str(path), "error": exc.message})
            else:
                click.echo(f"{path}: error: {exc.message}", err=True)
            continue
        if fmt == "json":
            results.append(document.as_dict())
        else:
            extra = f"  ({'; '.join(document.warnings)})" if document.warnings else ""
            click.echo(f"{path}: {document.container} {document.syntax} {document.profile}{extra}")
    if fmt == "json":
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    sys.exit(EXIT_UNREADABLE if failed else EXIT_OK)


@main.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--rules",
    default=None,
    metavar="LIST",
    help="Comma-separated rule sets (xsd,en16931,facturx,fr-ctc,extended-ctc-fr,pdf,xrechnung,"
    "peppol, a loaded pack's name; aliases fr, all, default); '+NAME' adds NAME to the default. "
    "Default: follows the invoice (French, XRechnung, Peppol rules when in scope). A file none "
    "of them applies to is invalid.",
)
@click.option(
    "--french-rules",
    type=click.Choice(["fatal", "warning"]),
    default=None,
    help="Build of the French rules (BR-FR): fatal, or the FNFE warning build (rules not yet "
    "enforced are warnings). Default: the rules calendar's build for --as-of.",
)
@click.option(
    "--as-of",
    metavar="DATE",
    default=None,
    help="Apply the French rules build in force on DATE (YYYY-MM-DD) per the rules calendar "
    "(extendable in the config file); default: today.",
)
@click.option(
    "--rule-pack",
    "rule_packs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A rule pack folder (with rulepack.toml); repeatable.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit", "sarif"]),
    default=None,
    help="Format of the report: text (for people; the default), json, junit or sarif. "
    "Same as --report FORMAT.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the --format report to this file instead of standard output "
    "(replaced whole once complete).",
)
@click.option(
    "--report",
    "report_specs",
    multiple=True,
    metavar="FORMAT[:PATH]",
    help="A report to write: FORMAT is text, json, junit, sarif or html, PATH a file (default: "
    "standard output, for one report at most). Repeatable: one run writes them all, e.g. "
    "--report text --report sarif:out.sarif --report junit:junit.xml.",
)
@click.option(
    "--summary",
    "summary_only",
    is_flag=True,
    help="Text report: one line per file (verdict, counts, fatal rules), then the batch table.",
)
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Text report: only the files that are not valid, one line each, nothing else.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "fr"]),
    default="en",
    show_default=True,
    help="Language of the fix hints (text and HTML reports) and of the HTML labels; the "
    "rules' own messages stay as published.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for a batch (default: all cores).",
)
@click.option(
    "--timeout",
    type=FiniteFloatRange(min=0.1, max=31_536_000),
    default=300.0,
    show_default=True,
    help="Seconds one file may take; a file over it is stopped and reported invalid "
    "(LAYER-FAILED, exit code 1).",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    envvar="FACTURFLOW_SCHEDULER",
    default=None,
    help="Validate on the dask.distributed cluster of this scheduler instead of local worker "
    "processes (pip install 'facturflow[dask]'); also $FACTURFLOW_SCHEDULER.",
)
@click.option(
    "--ship-bytes/--shared-paths",
    "ship_bytes",
    default=None,
    help="With --scheduler: send the files' bytes to the workers, or only their paths (the "
    "workers see this file system). Default: a probe on the workers decides.",
)
@limit_options
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=Path),
    default=None,
    metavar="DIR",
    help="Keep verdicts in DIR (default: $FACTURFLOW_VERDICT_CACHE, else the user cache folder): "
    "a file validated before with the same bytes, rules, artefacts and version is not checked "
    "again (its report says cached). See `facturflow cache`.",
)
@click.option(
    "--no-cache", is_flag=True, help="Validate every file, neither reading nor writing the cache."
)
def validate_command(
    paths: tuple[Path, ...],
    rules: str | None,
    rule_packs: tuple[Path, ...],
    fmt: str | None,
    output: Path | None,
    jobs: int | None,
    timeout: float,
    french_rules: str | None,
    as_of: str | None,
    max_size: int | None = None,
    max_nodes: int | None = None,
    report_specs: tuple[str, ...] = (),
    summary_only: bool = False,
    quiet: bool = False,
    lang: str = "en",
    cache_dir: Path | None = None,
    no_cache: bool = False,
    scheduler: str | None = None,
    ship_bytes: bool | None = None,
) -> None:
    """Validate invoices (files or folders; '-' reads one from standard input) against XSD,
    Schematron and PDF rules, and write reports for people (text, grouped by rule) and machines
    (JSON, JUnit, SARIF), several from one run with --report.

    Exit codes: 0 every input valid; 1 at least one invalid (a fatal finding, a file stopped at
    --timeout, a selection that does not apply to it); 2 a usage error (empty or unknown --rules,
    a bad rule pack, a bad --as-of, an --output or --report file that cannot be written) or an
    unreadable input;
    3 a malformed rules calendar in the config file, a French rules build not installed, or a
    --scheduler that cannot be used (unreachable, no worker, Dask not installed);
    130 Ctrl-C (the files finished by then are reported).
    """
    if summary_only and quiet:
        _usage("--summary and --quiet: give one or the other")
    targets = report_targets(report_specs, fmt, output)
    text_mode = "quiet" if quiet else "summary" if summary_only else "full"
    note_local_only(scheduler, "jobs", "timeout")
    try:
        _validate(
            paths,
            rules,
            rule_packs,
            targets,
            jobs,
            timeout,
            (french_rules, as_of),
            text_mode,
            lang,
            cli_limits(max_size, max_nodes),
            (cache_dir, no_cache),
            (scheduler, ship_bytes),
        )
    except KeyboardInterrupt:  # before or after the batch: nothing to report yet, or already
        click.echo("interrupted", err=True)
        sys.exit(exitcodes.INTERRUPTED)


def rule_selection(
    rules: str | None,
    packs: list[RulePack],
    french_rules: str | None = None,
    as_of: str | None = None,
) -> RuleSelection:
    """--rules, --french-rules and --as-of as a selection; a mistake exits with one line (2 for
    usage, 3 for a malformed rules calendar or a French rules build not installed)."""
    from .errors import ArtefactError, UnknownRuleSetError
    from .rules import parse_rule_sets
    from .rules_calendar import RulesConfigError

    if french_rules is not None and as_of is not None:
        _usage("--french-rules and --as-of: give one or the other")
    try:
        return parse_rule_sets(rules, packs, french_build=french_rules, as_of=as_of)
    except UnknownRuleSetError as exc:
        _usage(f"--rules {rules!r}: {exc.message}")
    except (RulesConfigError, ArtefactError) as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exitcodes.CONFIG)
    except ValueError as exc:
        _usage(f"--as-of {as_of!r}: {exc}")


def note_local_only(scheduler: str | None, *names: str) -> None:
    """With --scheduler, name the given local-pool options the user set (--jobs, --timeout):
    they do not apply on a cluster, and a silent --timeout would be trusted to stop a stuck
    file."""
    from click.core import ParameterSource

    context = click.get_current_context()
    given = [
        f"--{name}" for name in names
        if context.get_parameter_source(name) in {ParameterSource.COMMANDLINE,
                                                  ParameterSource.ENVIRONMENT}
    ]
    if scheduler and given:
        click.echo(
            f"note: {', '.join(given)} do not apply with --scheduler (the cluster's workers "
            "decide; README, \"Batches on a cluster: Dask\")",
            err=True,
        )


@contextlib.contextmanager
def cluster_errors() -> Iterator[None]:
    """A cluster that cannot be used (facturflow.cluster.ClusterError): one line, exit 3."""
    from .cluster import ClusterError

    try:
        yield
    except ClusterError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exitcodes.CONFIG)


@contextlib.contextmanager
def cluster_executor(scheduler: str | None) -> Iterator[Any]:
    """The Dask client of --scheduler (closed at the end), or None for local workers."""
    if not scheduler:
        yield None
        return
    from .cluster import connect

    with cluster_errors():
        client = connect(scheduler)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):  # a scheduler gone meanwhile
            client.close()


def _usage(message: str) -> NoReturn:
    """One line on stderr and the usage exit code (no click usage banner: scripts grep it)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(exitcodes.USAGE)


def report_targets(
    specs: tuple[str, ...], fmt: str | None, output: Path | None
) -> list[tuple[str, Path | None, str]]:
    """Every report to write as (format, file or None for standard output, option named in
    errors): each --report, and --format/--output when given or when there is no --report."""
    from .reports import FORMATS

    targets: list[tuple[str, Path | None, str]] = []
    if not specs or fmt is not None or output is not None:
        targets.append((fmt or "text", output, "--output"))
    for spec in specs:
        name, sep, path_text = spec.partition(":")
        if name not in FORMATS:
            _usage(f"--report {spec!r}: unknown format {name!r}; choose one of "
                   f"{', '.join(FORMATS)} (FORMAT or FORMAT:PATH)")
        if sep and not path_text:
            _usage(f"--report {spec!r}: give a file after ':' (or no ':' for standard output)")
        targets.append((name, Path(path_text) if path_text else None, f"--report {name}"))
    to_stdout = [option for _, path, option in targets if path is None]
    if len(to_stdout) > 1:
        _usage("only one report can go to standard output; give the others a file "
               "(--report FORMAT:PATH)")
    seen: dict[Path, str] = {}
    for _, path, option in targets:
        if path is None:
            continue
        key = Path(os.path.abspath(path))
        if key in seen:
            _usage(f"{option} {path}: already the file of {seen[key]}")
        seen[key] = option
    return targets


class _ReportFile:
    """The --output file, checked before the batch starts and replaced whole at the end.

    The report goes to a temporary file beside the target and replaces it when complete, so an
    interrupted or failed write never leaves half a report (nor destroys the previous one).
    Special files (a FIFO, /dev/stdout) and symbolic links are written in place.
    """

    def __init__(self, target: Path, option: str = "--output") -> None:
        self.target = target
        self.option = option
        if target.is_dir():
            _usage(f"{option} {target}: is a folder; give a file name")
        folder = target.parent
        # Same rule as convert and extract: missing folders are created, here before the batch
        # so that a path that cannot be made is refused before any work is done.
        if not folder.exists():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                _usage(f"{option} {target}: cannot write: cannot create {folder}: "
                       f"{exc.strerror or exc}")
        if not folder.is_dir():
            _usage(f"{option} {target}: cannot write: {folder} is not a folder")
        # Written through: a special file, or a symbolic link (replacing would drop the link).
        self.in_place = target.is_symlink() or (target.exists() and not target.is_file())
        self.temp: Path | None = None
        try:
            if self.in_place or (target.exists() and not os.access(target, os.W_OK)):
                with target.open("a", encoding="utf-8"):
                    pass  # proves it can be written, without truncating it
            if not self.in_place:
                fd, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
                os.close(fd)
                self.temp = Path(name)
        except OSError as exc:
            _usage(f"{option} {target}: cannot write: {exc.strerror or exc}")

    def write(
        self, reports: list[Report], fmt: str, text_mode: str = "full", lang: str = "en"
    ) -> None:
        from .reports import write

        if self.temp is None:
            with self.target.open("w", encoding="utf-8", errors=_NAMES) as stream:
                write(reports, fmt, stream, text_mode=text_mode, lang=lang)
            return
        try:
            with self.temp.open("w", encoding="utf-8", errors=_NAMES) as stream:
                write(reports, fmt, stream, text_mode=text_mode, lang=lang)
            mode = self.target.stat().st_mode & 0o7777 if self.target.exists() else _umasked()
            os.chmod(self.temp, mode)
            os.replace(self.temp, self.target)
        finally:
            self.discard()

    def discard(self) -> None:
        if self.temp is not None:
            with contextlib.suppress(OSError):
                self.temp.unlink()


# `facturflow validate -` reads one invoice from standard input, reported as STDIN_NAME.
STDIN_PATH = Path("-")
STDIN_NAME = "<stdin>"
STDIN_MAX_BYTES = 256 * 1024 * 1024


def _stdin_invoice(files: list[Path]) -> tuple[list[Path], tempfile.TemporaryDirectory[str]]:
    """The files with '-' replaced by a private copy of standard input (read once, bounded:
    the validators read files, and a pipe cannot be read twice)."""
    if files.count(STDIN_PATH) > 1:
        _usage("'-' (standard input) given more than once")
    if sys.stdin is None or sys.stdin.isatty():
        _usage("'-' reads an invoice from standard input, but nothing is piped in")
    data = sys.stdin.buffer.read(STDIN_MAX_BYTES + 1)
    if len(data) > STDIN_MAX_BYTES:
        _usage(f"standard input: larger than {STDIN_MAX_BYTES // (1024 * 1024)} MiB")
    folder = tempfile.TemporaryDirectory(prefix="facturflow-stdin-")
    copy = Path(folder.name) / "stdin"
    copy.write_bytes(data)
    return [copy if f == STDIN_PATH else f for f in files], folder


def _terminate_as_interrupt() -> Any:
    """Make SIGTERM raise KeyboardInterrupt (once; a second one kills); the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


# A file name of undecodable bytes (a surrogate-escaped str) is written back as its own bytes,
# as on standard output, instead of failing the whole report.
_NAMES = "surrogateescape"


def _umasked() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _validate(
    paths: tuple[Path, ...],
    rules: str | None,
    rule_packs: tuple[Path, ...],
    targets: list[tuple[str, Path | None, str]],
    jobs: int | None,
    timeout: float,
    dates: tuple[str | None, str | None] = (None, None),
    text_mode: str = "full",
    lang: str = "en",
    limits: Limits | None = None,
    caching: tuple[Path | None, bool] = (None, True),
    cluster: tuple[str | None, bool | None] = (None, None),
) -> None:
    from .cache_cli import tidy, verdict_cache
    from .errors import RulePackError
    from .inputs import expand_inputs
    from .progress import collect_until_interrupted
    from .reports import write
    from .rules import load_rule_pack
    from .validation import validate_many

    # Everything that can make the whole command a usage error is checked before the batch.
    try:
        packs = [load_rule_pack(folder) for folder in rule_packs]
    except RulePackError as exc:
        _usage(f"--rule-pack: {exc}")
    selection = rule_selection(rules, packs, *dates)
    files = list(expand_inputs(paths))
    if not files:
        _usage("no invoice files found in the given paths")
    stdin_dir: tempfile.TemporaryDirectory[str] | None = None
    if STDIN_PATH in files:
        files, stdin_dir = _stdin_invoice(files)
    cache = verdict_cache(*caching)
    report_files: list[tuple[str, _ReportFile]] = []
    stack = contextlib.ExitStack()
    try:
        # Every report file is checked (and its temporary file made) before the batch starts.
        for fmt, path, option in targets:
            if path is not None:
                report_files.append((fmt, _ReportFile(path, option)))
        executor = stack.enter_context(cluster_executor(cluster[0]))
        reports_iter = validate_many(
            files, selection, rule_packs=packs, jobs=jobs, timeout=timeout,
            limits=limits or DEFAULT_LIMITS, cache=cache, executor=executor,
            ship_bytes=cluster[1],
        )
        with cluster_errors():
            reports, interrupted = collect_until_interrupted(
                reports_iter, len(files), "validating"
            )
        if stdin_dir is not None:  # name the input as the user gave it, not the copy
            copy = str(Path(stdin_dir.name) / "stdin")
            reports = [
                dataclasses.replace(r, path=STDIN_NAME) if r.path == copy else r for r in reports
            ]
        # Interrupted or not, every output gets the reports of the files finished.
        for fmt, report_file in report_files:
            try:
                report_file.write(reports, fmt, text_mode, lang)
            except OSError as exc:  # checked before the batch, but a disk can still fill up
                _usage(f"{report_file.option} {report_file.target}: cannot write: "
                       f"{exc.strerror or exc}")
        for fmt, path, _ in targets:
            if path is None:
                write(reports, fmt, sys.stdout, text_mode=text_mode, lang=lang)
    finally:
        stack.close()
        for _, report_file in report_files:
            report_file.discard()
        if stdin_dir is not None:
            stdin_dir.cleanup()
        tidy(cache)
    unreadable = [r for r in reports if r.error is not None]
    # A text report on standard output names unreadable inputs itself; otherwise say it here.
    text_on_stdout = any(fmt == "text" and path is None for fmt, path, _ in targets)
    for report in unreadable:
        if not text_on_stdout:
            click.echo(f"{report.path}: error: {report.error}", err=True)
    if interrupted:
        click.echo(
            f"interrupted: {len(reports)} of {len(files)} files validated and reported", err=True
        )
        sys.exit(exitcodes.INTERRUPTED)
    if unreadable:
        sys.exit(EXIT_UNREADABLE)
    sys.exit(EXIT_OK if all(r.ok for r in reports) else EXIT_INVALID)


@main.command("extract")
@click.argument("pdf", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    "output_text",
    type=click.Path(),
    default=None,
    help="File, or folder (an existing one, or a path ending in '/'), to write the XML to; "
    "missing folders are created. Default: standard output.",
)
def extract_command(pdf: Path, output_text: str | None) -> None:
    """Write the invoice XML embedded in a Factur-X / ZUGFeRD PDF."""
    try:
        document = detect(pdf)
    except FacturflowError as exc:
        click.echo(f"{pdf}: error: {exc.message}", err=True)
        sys.exit(EXIT_UNREADABLE)
    if document.container != "pdf" or document.pdf is None or document.attachment_name is None:
        click.echo(f"{pdf}: error: not a PDF with an embedded invoice", err=True)
        sys.exit(EXIT_UNREADABLE)
    attachment = next(a for a in document.pdf.attachments if a.name == document.attachment_name)
    if output_text is None:
        sys.stdout.buffer.write(attachment.data)
        sys.stdout.buffer.flush()
        return
    from .pdf import safe_output_path

    output = Path(output_text)
    try:
        # Same rule as convert and validate: missing folders are created; 'out/' is a folder.
        if output_text.endswith(("/", os.sep)) or output.is_dir():
            output.mkdir(parents=True, exist_ok=True)
            target = safe_output_path(output, attachment.name)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            target = output
        target.write_bytes(attachment.data)
    except FacturflowError as exc:
        click.echo(f"{pdf}: error: {exc.message}", err=True)
        sys.exit(EXIT_UNREADABLE)
    except OSError as exc:
        click.echo(f"{pdf}: error: cannot write {output}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_UNREADABLE)
    click.echo(f"{pdf}: wrote {attachment.name} to {target}", err=True)


@main.command("artefacts")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="text: one line per artefact; json: {artefacts, problems}.",
)
def artefacts_command(fmt: str) -> None:
    """List the official artefacts in use and check them against the pinned manifests."""
    from .artefacts import listing, verify

    rows = listing()
    problems = verify()
    if fmt == "json":
        click.echo(json.dumps({"artefacts": rows, "problems": problems}, indent=2))
    else:
        for row in rows:
            click.echo(
                f"{row['kind']:<10} {row['name']:<45} {row['version']:<40} "
                f"{row['package']} {row['package_version']}  sha256:{row['sha256'][:12]}"
            )
        for problem in problems:
            click.echo(f"MISMATCH: {problem}", err=True)
    sys.exit(EXIT_INVALID if problems else EXIT_OK)


# Commands of later stages, imported only when used so that `facturflow validate` starts fast.
_LAZY_COMMANDS = {
    "cache": "facturflow.cache_cli:cache_group",
    "convert": "facturflow.convert_cli:convert_command",
    "doctor": "facturflow.transmit.register_cli:doctor_command",
    "inbox": "facturflow.transmit.inbox_cli:inbox_group",
    "outbox": "facturflow.transmit.outbox_cli:outbox_group",
    "read": "facturflow.read_cli:read_command",
    "register": "facturflow.transmit.register_cli:register_group",
    "render": "facturflow.render_cli:render_command",
    "rules": "facturflow.rules_cli:rules_group",
    "sandbox": "facturflow.transmit.cli:sandbox_command",
    "serve": "facturflow.service.cli:serve_command",
    "send": "facturflow.transmit.cli:send_command",
    "status": "facturflow.transmit.cli:status_command",
    "webhook": "facturflow.transmit.webhook_cli:webhook_group",
}

if __name__ == "__main__":  # pragma: no cover
    main()
