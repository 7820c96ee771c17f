"""Turn the paths a user names into the invoice files to process."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .xmlsafe import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    import click

_F = TypeVar("_F", bound=Callable[..., Any])

INVOICE_SUFFIXES = {".xml", ".pdf"}


def expand_inputs(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Yield files as given, and the .xml/.pdf files found under directories, sorted."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INVOICE_SUFFIXES
            )
        else:
            yield path


# The options every command that reads invoices takes to raise (or lower) the input limits, and
# the Limits field each one sets: an input over a limit is refused with a message naming it.
LIMIT_OPTIONS = (("max_bytes", "--max-size"), ("max_nodes", "--max-nodes"))
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(ctx: click.Context | None, param: click.Parameter | None,
               value: str | None) -> int | None:
    """A byte count: 1000000, 500KB, 200MB, 1.5GB (KB, MB, GB are 1024-based; B optional)."""
    import click

    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?\s*", value, re.IGNORECASE)
    size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]) if m else 0
    if size < 1:
        raise click.BadParameter(f"{value!r} is not a positive size (e.g. 200MB, 1GB, 150000000)")
    return size


def limit_options(command: _F) -> _F:
    """Add --max-size and --max-nodes to a click command (parameters max_size, max_nodes; turn
    them into Limits with `cli_limits`): the one definition every invoice-reading command uses."""
    import click

    command = click.option(
        "--max-nodes",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Most markup items (elements, attributes) an XML input may have (default: 1000000; "
        "a 100,000-line invoice has about 3 million).",
    )(command)
    command = click.option(
        "--max-size",
        callback=parse_size,
        default=None,
        metavar="SIZE",
        help="Largest input accepted, e.g. 200MB or 1GB (default: 100MB).",
    )(command)
    return command


def cli_limits(max_size: int | None, max_nodes: int | None) -> Limits:
    """The default input limits with those given on the command line, whose errors name the
    option that raises them ("exceeds --max-size 100 MB (raise it with --max-size)")."""
    limits = replace(DEFAULT_LIMITS, options=LIMIT_OPTIONS)
    if max_size is not None:
        limits = replace(limits, max_bytes=max_size)
    if max_nodes is not None:
        limits = replace(limits, max_nodes=max_nodes)
    return limits
