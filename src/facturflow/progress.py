"""A progress bar on stderr for batches, shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _drawn(items: Iterable[T], total: int, label: str) -> Iterator[T]:
    """`items` as they come, drawing a bar meanwhile (when stderr is a terminal)."""
    if total < 2 or not sys.stderr.isatty():
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

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
            yield item
            progress.advance(task)


def collect(items: Iterable[T], total: int, label: str) -> list[T]:
    """Collect `items` (results arriving from a pool), drawing a bar while they come."""
    return list(_drawn(items, total, label))


def collect_until_interrupted(items: Iterable[T], total: int, label: str) -> tuple[list[T], bool]:
    """Like `collect`, but Ctrl-C stops it: (what arrived before, True), so that a command can
    still report the finished part of a batch. The source is closed (a pool stops its workers)."""
    source = iter(items)
    collected: list[T] = []
    drawn = _drawn(source, total, label)
    try:
        for item in drawn:
            collected.append(item)
    except KeyboardInterrupt:
        for iterator in (drawn, source):
            close = getattr(iterator, "close", None)
            if close is not None:
                with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C meanwhile
                    close()
        return collected, True
    return collected, False
