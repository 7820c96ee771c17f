"""The command line: thin; parses arguments, calls the library, prints, sets the exit code.

Exit codes: 0 every input valid (or the command succeeded); 1 at least one invalid input or a
failed send; 2 a usage error or an input that cannot be read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__
from .detect import detect
from .errors import FacturflowError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
            click.echo(
                f"{path}: {document.container} {document.syntax} {document.profile}{extra}"
            )
    if fmt == "json":
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    sys.exit(EXIT_UNREADABLE if failed else EXIT_OK)


# Commands of later stages register themselves here (one line each, keep sorted).
def _register() -> None:
    pass


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
