"""A progress bar on stderr for batches, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def collect(items: Iterable[T], total: int, label: str) -> list[T]:
    """Collect `items` (results arriving from a pool), drawing a bar while they come."""
    if total < 2 or not sys.stderr.isatty():
        return list(items)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    collected: list[T] = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        for item in items:
            collected.append(item)
            progress.advance(task)
    return collected
