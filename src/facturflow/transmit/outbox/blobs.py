"""Stored uploads: written durably (in a background thread when deferred), or rebuilt."""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

from .folder import StoredUploadError
from .records import Item, sha256


def rebuilt_upload(item: Item, problem: str) -> bytes:
    """The upload of `item` made again from its source, when the source is unchanged and yields
    the very same bytes (the upload's hash is the invoice's key: other bytes would be another
    upload); StoredUploadError saying why not, and how to forget the entry."""
    from ..pipeline import Rejected, prepare  # the pipeline imports this module

    where = f"the stored upload of {item.source_path} ({item.upload_sha256[:12]}) is {problem}"
    forget = (f"; if Qonto does not have it, forget the entry with `facturflow outbox forget "
              f"{item.upload_sha256[:12]}` and send the file again")
    try:
        data = Path(item.source_path).read_bytes()
    except OSError as exc:
        raise StoredUploadError(f"{where} and the source cannot be read "
                                f"({exc.strerror or exc}){forget}",
                                source=item.source_path) from None
    if sha256(data) != item.source_sha256:
        raise StoredUploadError(f"{where} and the source has changed since{forget}",
                                source=item.source_path)
    upload, _, rules = item.upload_format.partition(":")
    try:
        prepared = prepare(item.source_path, data, "xml" if upload == "xml" else "facturx",
                           None if rules in ("", "default") else rules)
    except Rejected as exc:
        raise StoredUploadError(f"{where} and the source no longer passes: {exc.reason}"
                                f"{forget}", source=item.source_path) from None
    if sha256(prepared.upload) != item.upload_sha256:
        raise StoredUploadError(f"{where}; the unchanged source converts to other bytes "
                                f"now{forget}", source=item.source_path)
    return prepared.upload


def _store_blob(folder: Path, upload_sha: str, data: bytes) -> None:
    """Write `folder/upload_sha` durably, its folder entry included."""
    _write_blob_file(folder, upload_sha, data)
    _fsync_path(folder)


def _write_blob_file(folder: Path, upload_sha: str, data: bytes) -> None:
    """Write and fsync `folder/upload_sha` unless it is there (not its folder entry: a file
    found there may be one a killed run renamed in but never made durable)."""
    target = folder / upload_sha
    if target.exists() and sha256(target.read_bytes()) == upload_sha:
        return
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".blob.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:  # a full disk must not leave a half-written temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _BlobWriter:
    """Stores uploads durably in a background thread. Uploads queued while it works go as one
    group: each file fsynced, then their folder once (one fsync fewer per upload when the disk
    is the bottleneck). A job is done only when its folder entry is durable too."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.jobs: queue.SimpleQueue[tuple[str, bytes, Future[None]] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="facturflow-outbox", daemon=True)
        self.thread.start()

    def submit(self, upload_sha: str, data: bytes) -> Future[None]:
        future: Future[None] = Future()
        self.jobs.put((upload_sha, data, future))
        return future

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()

    def _run(self) -> None:
        running = True
        while running:
            group = [self.jobs.get()]
            with contextlib.suppress(queue.Empty):
                while group[-1] is not None:
                    group.append(self.jobs.get_nowait())
            if group[-1] is None:
                running = False
            stored: list[Future[None]] = []
            for job in group:
                if job is None:
                    continue
                upload_sha, data, future = job
                try:
                    _write_blob_file(self.folder, upload_sha, data)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    stored.append(future)
            try:
                if stored:
                    _fsync_path(self.folder)
            except BaseException as exc:
                for future in stored:
                    future.set_exception(exc)
            else:
                for future in stored:
                    future.set_result(None)


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder: so that the entries it holds are on disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
