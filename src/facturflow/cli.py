"""The command line: thin; parses arguments, calls the library, prints, sets the exit code.

Exit codes: 0 every input valid (or the command succeeded); 1 at least one invalid input or a
failed send; 2 a usage error or an input that cannot be read.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click

from . import __version__
from .detect import detect
from .errors import FacturflowError
from .xmlsafe import DEFAULT_LIMITS, Limits

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


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A byte count: 1000000, 500KB, 200MB, 1.5GB (KB, MB, GB are 1024-based; B optional)."""
    if value is None:
        return None
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?\s*", value, re.IGNORECASE)
    size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]) if m else 0
    if size < 1:
        raise click.BadParameter(f"{value!r} is not a positive size (e.g. 200MB, 1GB, 150000000)")
    return size


def _limits(max_size: int | None, max_nodes: int | None) -> Limits:
    """The default input limits, with those given on the command line raised or lowered."""
    from dataclasses import replace

    limits = DEFAULT_LIMITS
    if max_size is not None:
        limits = replace(limits, max_bytes=max_size)
    if max_nodes is not None:
        limits = replace(limits, max_nodes=max_nodes)
    return limits


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
@click.option(
    "--max-size",
    callback=_parse_size,
    default=None,
    metavar="SIZE",
    help="Largest input accepted, e.g. 200MB or 1GB (default: 100MB).",
)
@click.option(
    "--max-nodes",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Most markup items (elements, attributes) an XML input may have (default: 1000000; "
    "a 100,000-line invoice has about 3 million).",
)
def validate_command(
    paths: tuple[Path, ...],
    rules: str | None,
    rule_packs: tuple[Path, ...],
    fmt: str,
    output: Path | None,
    jobs: int | None,
    timeout: float,
    max_size: int | None,
    max_nodes: int | None,
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
            files, rules, rule_packs=rule_packs, jobs=jobs, timeout=timeout,
            limits=_limits(max_size, max_nodes),
        )
        reports = collect(reports_iter, len(files), "validating")
    except RulePackError as exc:
        raise click.UsageError(str(exc)) from None
    if output is None:
        write(reports, fmt, sys.stdout)
    else:
        with output.open("w", encoding="utf-8") as stream:
            write(reports, fmt, stream)
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
    type=click.Path(path_type=Path),
    default=None,
    help="File (or existing folder) to write the XML to; default: standard output.",
)
def extract_command(pdf: Path, output: Path | None) -> None:
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
    if output is None:
        sys.stdout.buffer.write(attachment.data)
        sys.stdout.buffer.flush()
        return
    from .pdf import safe_output_path

    try:
        target = safe_output_path(output, attachment.name) if output.is_dir() else output
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
    "read": "facturflow.read_cli:read_command",
    "sandbox": "facturflow.transmit.cli:sandbox_command",
    "send": "facturflow.transmit.cli:send_command",
    "status": "facturflow.transmit.cli:status_command",
}

if __name__ == "__main__":  # pragma: no cover
    main()
