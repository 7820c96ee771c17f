"""`facturflow render INVOICE -o out.pdf|out.html|- [--lang fr|en]`: a readable view of an invoice.

Exit codes (facturflow.exitcodes): 0 written; 2 (USAGE) an input that cannot be read as an
invoice, an output whose format cannot be told (.pdf, .html or .htm; or --format), or an
output that cannot be written; 130 Ctrl-C.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import exitcodes
from .errors import FacturflowError
from .inputs import cli_limits, limit_options

_SUFFIXES = {".pdf": "pdf", ".html": "html", ".htm": "html"}
STDOUT = Path("-")


def _output(ctx: click.Context, param: click.Parameter, value: str) -> Path:
    # "" would be the current folder: what `-o "$OUT"` with OUT unset gives.
    if not value.strip():
        raise click.BadParameter("is empty (an unset variable?): name the file to write")
    return Path(value)


@click.command("render")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(), callback=_output,
              help="The file to write: .pdf or .html (or say which with --format); '-': "
              "standard output (with --format).")
@click.option("--format", "fmt", type=click.Choice(["pdf", "html"]), default=None,
              help="pdf or html; default: from the output's extension.")
@click.option("--lang", type=click.Choice(["fr", "en"]), default="fr", show_default=True,
              help="Language of the words (labels, units, VAT categories, payment means...).")
@limit_options
def render_command(source: Path, output: Path, fmt: str | None, lang: str,
                   max_size: int | None = None, max_nodes: int | None = None) -> None:
    """Write a human-readable view (PDF or HTML) of any invoice: CII, UBL or Factur-X PDF,
    received or not. Codes read as words in the chosen language."""
    from .detection import detect
    from .outputs import write_bytes_atomically
    from .reading import read
    from .render import render

    if output.is_dir():
        click.echo(f"{output}: error: is a folder: name the file to write in it", err=True)
        sys.exit(exitcodes.USAGE)
    if fmt is None and output == STDOUT:
        click.echo("-: error: standard output has no extension to tell the format: give "
                   "--format pdf or --format html", err=True)
        sys.exit(exitcodes.USAGE)
    if fmt is None:
        fmt = _SUFFIXES.get(output.suffix.lower())
        if fmt is None:
            click.echo(f"{output}: error: cannot tell the format from the extension "
                       f"{output.suffix or '(none)'!s}; name it .pdf or .html, or give --format",
                       err=True)
            sys.exit(exitcodes.USAGE)
    try:
        # A received invoice may carry codes outside today's lists: shown, not refused (as
        # render() reads a path).
        invoice = read(detect(source, limits=cli_limits(max_size, max_nodes)), check_codes=False)
        data = render(invoice, format="pdf" if fmt == "pdf" else "html",
                      lang="en" if lang == "en" else "fr")
    except FacturflowError as exc:
        click.echo(f"{source}: error: {exc.message}", err=True)
        sys.exit(exitcodes.USAGE)
    except OSError as exc:  # a folder, a file that vanished or cannot be read
        click.echo(f"{source}: error: cannot read: {exc.strerror or exc}", err=True)
        sys.exit(exitcodes.USAGE)
    try:
        if output == STDOUT:  # the view itself on standard output: the line goes to stderr
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            write_bytes_atomically(output, data)
    except OSError as exc:
        click.echo(f"{output}: error: cannot write: {exc.strerror or exc}", err=True)
        sys.exit(exitcodes.USAGE)
    click.echo(f"{output}: {fmt.upper()} view of {source} ({lang})", err=output == STDOUT)
    sys.exit(exitcodes.OK)
