"""Writing an output or state file without ever leaving half of it, nor destroying what is not
a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _umasked() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomically(target: Path, data: bytes) -> None:
    """Write `data` to `target`: through a temporary file beside it that replaces it when
    complete (an interrupted or failed write leaves the old file, never half a new one), except
    for special files (a device, a FIFO, /dev/stdout) and symbolic links, which are written in
    place: replacing them would destroy the device node or the link. Raises OSError."""
    if target.is_symlink() or (target.exists() and not target.is_file()):
        with target.open("wb") as stream:
            stream.write(data)
        return
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        mode = target.stat().st_mode & 0o7777 if target.exists() else _umasked()
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:  # an error, or Ctrl-C between the two: no .part left behind
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def write_private_atomically(target: Path, data: bytes) -> None:
    """Write a state file (tokens, an index) whole or not at all: through a temporary file
    beside it, flushed to disk, that replaces it when complete; mode 0600 from its first byte
    (mkstemp), whatever the umask. Raises OSError."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(name, target)
    except BaseException:  # an error, or Ctrl-C: no temporary file left behind
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


__all__ = ["write_bytes_atomically", "write_private_atomically"]
