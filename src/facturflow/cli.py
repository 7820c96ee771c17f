"""The command line: thin; parses arguments, calls the library, prints, sets the exit code.

Exit codes: 0 every input valid (or the command succeeded); 1 at least one invalid input or a
failed send; 2 a usage error or an input that cannot be read.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

import click

from . import __version__
from .detect import detect
from .errors import FacturflowError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


class _LazyGroup(click.Group):
    """A group whose later-stage commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="facturflow")
def main() -> None:
    """Detect, validate, convert and send French e-invoices (Factur-X, UBL, CII)."""


@main.command("detect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def detect_command(paths: tuple[Path, ...], fmt: str) -> None:
    """Say what each input is: container, syntax and profile."""
    from .inputs import expand_inputs

    results: list[dict[str, str]] = []
    failed = False
    for path in expand_inputs(paths):
        try:
            document = detect(path)
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
    help="Comma-separated rule sets (xsd,en16931,facturx,fr-ctc,extended-ctc-fr,pdf; "
    "'all'); default: all of them.",
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
    default="text",
    show_default=True,
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the report to this file instead of standard output.",
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
    type=click.FloatRange(min=0.1),
    default=300.0,
    show_default=True,
    help="Seconds one file may take; a file over it is stopped and reported invalid.",
)
def validate_command(
    paths: tuple[Path, ...],
    rules: str | None,
    rule_packs: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    jobs: int | None,
    timeout: float,
) -> None:
    """Validate invoices (files or folders) against XSD, Schematron and PDF rules."""
    from .errors import RulePackError
    from .inputs import expand_inputs
    from .progress import collect
    from .reports import write
    from .validate import validate_many

    files = list(expand_inputs(paths))
    if not files:
        raise click.UsageError("no invoice files found in the given paths")
    try:
        reports_iter = validate_many(
            files, rules, rule_packs=rule_packs, jobs=jobs, timeout=timeout
        )
        reports = collect(reports_iter, len(files), "validating")
    except RulePackError as exc:
        raise click.UsageError(str(exc)) from None
    if output is None:
        write(reports, fmt, sys.stdout)
    else:
        try:  # same rule as convert and extract: missing folders are created
            output.parent.mkdir(parents=True, exist_ok=True)
            with output.open("w", encoding="utf-8") as stream:
                write(reports, fmt, stream)
        except OSError as exc:
            click.echo(f"{output}: error: cannot write the report: {exc.strerror or exc}",
                       err=True)
            sys.exit(EXIT_UNREADABLE)
    unreadable = [r for r in reports if r.error is not None]
    for report in unreadable:
        if fmt != "text" or output is not None:
            click.echo(f"{report.path}: error: {report.error}", err=True)
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
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
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
    "convert": "facturflow.convert_cli:convert_command",
    "inbox": "facturflow.transmit.cli:inbox_command",
    "outbox": "facturflow.transmit.outbox_cli:outbox_group",
    "read": "facturflow.read_cli:read_command",
    "sandbox": "facturflow.transmit.cli:sandbox_command",
    "send": "facturflow.transmit.cli:send_command",
    "status": "facturflow.transmit.cli:status_command",
}

if __name__ == "__main__":  # pragma: no cover
    main()
