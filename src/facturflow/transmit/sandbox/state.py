"""Persistence and locking: the state's snapshot and journal, upload files, the folder lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SandboxBusyError

LOCK_NAME = "sandbox.lock"


def _private_open(path: Path, flags: int) -> int:
    """A file descriptor on `path`, the file created with mode 0600 (it may hold secrets)."""
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)  # a file left by an older version, created 0644
    return fd


class _Tracked(dict[str, Any]):
    """A dict that records which of its keys were set, replaced or removed (for the journal).

    A value changed in place (``d["sends"].setdefault(id, {})["calls"] += 1``) is covered when it
    was reached through `setdefault`, which counts as a change; reaching it with `get` or `[]`
    and mutating it is not seen (the sandbox's own code never does that).
    """

    def __init__(self, name: str | None, changed: set[tuple[str | None, str]],
                 items: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._name = name
        self._changed = changed
        if items:
            for key, value in items.items():
                super().__setitem__(key, self._wrap(key, value))

    def _wrap(self, key: str, value: Any) -> Any:
        # Top-level dicts become tracked collections of their own.
        if self._name is None and isinstance(value, dict) and not isinstance(value, _Tracked):
            return _Tracked(key, self._changed, value)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, self._wrap(key, value))
        self._changed.add((self._name, key))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed.add((self._name, key))

    def pop(self, key: str, *default: Any) -> Any:
        self._changed.add((self._name, key))
        return super().pop(key, *default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        self._changed.add((self._name, key))
        return self[key]

    def update(self, *args: Any, **kw: Any) -> None:
        for key, value in dict(*args, **kw).items():
            self[key] = value

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._changed.add((self._name, key))
        return key, value

    def clear(self) -> None:
        self._changed.update((self._name, key) for key in self)
        super().clear()


class _State:
    """All sandbox data, under one lock, persisted in `state.json` plus a journal.

    Each change is appended to `state.log` as one JSON line listing the entries it set or
    removed (`[collection, key, value]`, `[collection, key]`, or `[name, value]` for a top-level
    value), so a request costs the size of what it changed, not of the whole state. On load the
    journal is replayed over the snapshot; a torn last line (a killed process) is ignored. When
    the journal outgrows the snapshot, the snapshot is rewritten (atomically) and the journal
    emptied: amortised, saving stays proportional to the change. Each snapshot carries a fresh
    `_journal` tag that its journal's first line repeats, so a journal left behind by a kill
    between the two is recognised as older than the snapshot and not replayed (its entries
    could otherwise revert values changed since). No fsync: like before, the state
    survives the sandbox being killed, not the machine losing power. Upload files are kept
    beside it, named by their sha256.
    """

    MIN_COMPACT_BYTES = 1 << 20

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = folder / "files"
        # State holds the API key, OAuth secrets and tokens: private folder, private files.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.files.mkdir(mode=0o700, exist_ok=True)
        self.path = folder / "state.json"
        self.log_path = folder / "state.log"
        self.lock = threading.RLock()
        self._changed: set[tuple[str | None, str]] = set()
        data: dict[str, Any] = {
            "org": None, "settings": {}, "client_invoices": {}, "hashes": {}, "clients": {},
            "supplier_invoices": {}, "attachments": {}, "sends": {}, "access_tokens": {},
            "refresh_tokens": {}, "codes": {}, "registrations": {}, "idempotency": {},
            "clock_offset": 0.0, "outcomes": {}, "requests": 0,
        }
        tag = None
        if self.path.exists():
            data.update(json.loads(self.path.read_text("utf-8")))
            tag = data.pop("_journal", None)
        if self.log_path.exists():
            self._replay(data, self.log_path.read_bytes(), tag)
        self.data = _Tracked(None, self._changed, data)
        self._changed.clear()
        self._log: Any = None
        self._log_bytes = 0
        self._snapshot_bytes = 0

    @staticmethod
    def _replay(data: dict[str, Any], journal: bytes, tag: str | None) -> None:
        for number, line in enumerate(journal.split(b"\n")):
            if not line.strip():
                continue
            try:
                entries = json.loads(line)
            except ValueError:
                break  # torn by a kill in the middle of a write: nothing after it was written
            if number == 0 and isinstance(entries, dict):
                if entries.get("snapshot") != tag:
                    return  # the journal of an older snapshot, which already holds its entries
                continue
            for entry in entries:
                if len(entry) == 2 and not isinstance(data.get(entry[0]), dict):
                    data[entry[0]] = entry[1]  # a top-level value (collections are dicts)
                elif len(entry) == 2:
                    collection = data.get(entry[0])
                    if isinstance(collection, dict):
                        collection.pop(entry[1], None)
                else:
                    collection = data.setdefault(entry[0], {})
                    if isinstance(collection, dict):
                        collection[entry[1]] = entry[2]
                    else:
                        data[entry[0]] = {entry[1]: entry[2]}

    def save(self) -> None:
        """Persist what changed since the last save (the caller holds `lock`)."""
        if not self._changed:
            return
        if self._log is None or self._log_bytes > max(self.MIN_COMPACT_BYTES,
                                                      self._snapshot_bytes):
            self.snapshot()
            return
        entries: list[list[Any]] = []
        for name, key in self._changed:
            if name is None:
                if isinstance(self.data.get(key), dict):
                    self.snapshot()  # a whole collection replaced (rare): no entry says that
                    return
                entries.append([key, self.data.get(key)])
            elif key in self.data[name]:
                entries.append([name, key, self.data[name][key]])
            else:
                entries.append([name, key])
        self._changed.clear()
        line = json.dumps(entries, separators=(",", ":")).encode() + b"\n"
        self._log.write(line)
        self._log.flush()
        self._log_bytes += len(line)

    def snapshot(self) -> None:
        """Rewrite `state.json` whole and start an empty journal."""
        tag = uuid.uuid4().hex
        payload = json.dumps({**self.data, "_journal": tag}, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".state.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, self.path)
        # Entries still in the old journal are also in the snapshot: emptying it loses nothing,
        # and a kill before the new journal's first line leaves a journal whose tag does not
        # match, which the next load ignores.
        if self._log is not None:
            self._log.close()
        fd = _private_open(self.log_path, os.O_WRONLY | os.O_TRUNC)
        self._log = os.fdopen(fd, "wb")  # kept open, closed by close()
        header = json.dumps({"snapshot": tag}).encode() + b"\n"
        self._log.write(header)
        self._log.flush()
        self._changed.clear()
        self._log_bytes, self._snapshot_bytes = len(header), len(payload)

    def close(self) -> None:
        with self.lock:
            if self._log is not None:
                self.save()
                self._log.close()
                self._log = None

    def put_file(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self.files / sha
        if not target.exists():
            with os.fdopen(_private_open(target, os.O_WRONLY | os.O_TRUNC), "wb") as fh:
                fh.write(data)
        return sha

    def get_file(self, sha: str) -> bytes:
        return (self.files / sha).read_bytes()


# ---------------------------------------------------------------------------------------------
# The server


def _lock_folder(folder: Path) -> int:
    """An open, exclusively locked descriptor on `folder`/sandbox.lock, or SandboxBusyError."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _private_open(folder / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, UnicodeDecodeError):
            holder = os.read(fd, 64).decode("ascii").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise SandboxBusyError(
            f"another sandbox{who} is serving the state folder {folder}: stop it, or give "
            "this one another state folder", source=str(folder),
        ) from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
