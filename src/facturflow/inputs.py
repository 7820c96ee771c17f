"""Turn the paths a user names into the invoice files to process."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

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
