"""The verdict cache on the command line: `validate --cache DIR / --no-cache`, and
`facturflow cache info|clear|prune` (see facturflow.validation.verdict_cache)."""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from pathlib import Path

import click

from . import exitcodes
from .validation.verdict_cache import VerdictCache, default_folder, disabled_by_environment


def verdict_cache(folder: Path | None, disabled: bool) -> VerdictCache | None:
    """The cache `validate` uses: none with --no-cache (or FACTURFLOW_VERDICT_CACHE=off and no
    --cache), else --cache DIR or the default folder. A folder that cannot be written is one
    warning line on stderr, and the run goes on without the cache."""
    if disabled or (folder is None and disabled_by_environment()):
        return None
    cache = VerdictCache(folder)
    problem = cache.check()
    if problem is not None:
        click.echo(f"warning: verdict cache: {problem}; validating without it", err=True)
        return None
    cache.warn_as_line = True  # a write failing later (a full disk) is said the same way
    return cache


def tidy(cache: VerdictCache | None) -> None:
    """After a run: keep the cache to its size when this run stored entries (a warm run that
    stored nothing does not even list the folder)."""
    if cache is None or cache.problem is not None:
        return
    if cache.stats["stored"] or cache.stats["misses"]:  # workers store what the parent missed
        with contextlib.suppress(OSError):  # a cache is never worth failing a validation for
            cache.prune()


_FOLDER = click.option(
    "--cache",
    "folder",
    type=click.Path(path_type=Path),
    default=None,
    help="The verdict cache folder (default: $FACTURFLOW_VERDICT_CACHE, else the user cache "
    "folder, e.g. ~/.cache/facturflow/verdicts).",
)


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def _cache(folder: Path | None) -> VerdictCache:
    """The cache the command looks at: a folder, or one that does not exist yet (empty); a
    file or a folder that cannot be read is one line and exit 2, not an empty cache."""
    cache = VerdictCache(folder if folder is not None else default_folder())
    try:
        if cache.folder.exists() and not cache.folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "is not a folder")
        if cache.folder.is_dir():
            next(iter(cache.folder.iterdir()), None)  # readable (a folder of another user)
    except OSError as exc:
        click.echo(f"error: {cache.folder}: {exc.strerror or exc}", err=True)
        sys.exit(exitcodes.USAGE)
    return cache


@click.group("cache")
def cache_group() -> None:
    """The verdict cache: validation reports kept by `facturflow validate`, keyed by the
    input's bytes, the rule selection, every artefact's hash and facturflow's version."""


@cache_group.command("info")
@_FOLDER
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="text: one line; json: {folder, entries, bytes, max_bytes}.",
)
def info_command(folder: Path | None, fmt: str) -> None:
    """Show the cache folder, its number of entries and their size."""
    cache = _cache(folder)
    try:
        info = cache.info()
    except OSError as exc:  # a shard that cannot be read
        click.echo(f"error: {cache.folder}: {exc.strerror or exc}", err=True)
        sys.exit(exitcodes.USAGE)
    if fmt == "json":
        click.echo(json.dumps(info.as_dict(), indent=2))
        return
    limit = f" (pruned to {info.max_bytes / 1024**2:g} MiB)" if info.max_bytes else ""
    click.echo(f"{info.folder}: {_entries(info.entries)}, {info.bytes} bytes{limit}")


@cache_group.command("clear")
@_FOLDER
def clear_command(folder: Path | None) -> None:
    """Remove every entry of the cache."""
    cache = _cache(folder)
    try:
        removed = cache.clear()
    except OSError as exc:
        click.echo(f"error: {cache.folder}: {exc.strerror or exc}", err=True)
        sys.exit(exitcodes.USAGE)
    _refuse_unremoved(cache)
    click.echo(f"{cache.folder}: {_entries(removed)} removed")


def _refuse_unremoved(cache: VerdictCache) -> None:
    """Entries that could not be removed: one line and exit 2, not '0 entries removed'."""
    if cache.not_removed:
        click.echo(f"error: {cache.folder}: {_entries(cache.not_removed)} "
                   f"could not be removed: {cache.removal_problem}", err=True)
        sys.exit(exitcodes.USAGE)


@cache_group.command("prune")
@_FOLDER
@click.option(
    "--max-size",
    "max_size",
    default=None,
    metavar="SIZE",
    help="Keep at most SIZE of entries, e.g. 50MB (default: 256MB), removing those written "
    "longest ago.",
)
def prune_command(folder: Path | None, max_size: str | None) -> None:
    """Remove the entries written longest ago until the cache is within its size."""
    from .inputs import parse_size

    limit = None
    if max_size is not None:
        try:
            limit = parse_size(None, None, max_size)
        except click.BadParameter as exc:
            click.echo(f"error: --max-size: {exc.message}", err=True)
            sys.exit(exitcodes.USAGE)
    cache = _cache(folder)
    try:
        removed = cache.prune(limit)
        _refuse_unremoved(cache)
        info = cache.info()
    except OSError as exc:  # a shard that cannot be read
        click.echo(f"error: {cache.folder}: {exc.strerror or exc}", err=True)
        sys.exit(exitcodes.USAGE)
    click.echo(
        f"{cache.folder}: {_entries(removed)} removed, {info.entries} kept ({info.bytes} bytes)"
    )
