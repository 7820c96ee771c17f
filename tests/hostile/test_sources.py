"""Paths that are not regular files: refused at once, never read (a FIFO would block forever,
a device never ends), also behind a symbolic link."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facturflow.detection import detect
from facturflow.errors import InputError, InputTooLargeError
from facturflow.xmlsafe import Limits

from .builders import MINIMAL_CII


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        detect(fifo)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_symlink_to_a_device_is_refused(tmp_path: Path, device: str) -> None:
    link = tmp_path / "invoice.xml"
    link.symlink_to(device)
    with pytest.raises(InputError, match="not a regular file"):
        detect(link)


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="directory"):
        detect(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        detect(tmp_path / "missing.xml")
    dangling = tmp_path / "dangling.xml"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError):
        detect(dangling)


def test_endless_file_object_is_read_only_up_to_the_limit() -> None:
    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            buffer[:] = b"<" * len(buffer)
            return len(buffer)

    with pytest.raises(InputTooLargeError):
        detect(io.BufferedReader(Endless()), limits=Limits(max_bytes=1 << 20))


def test_text_mode_file_object_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "invoice.xml"
    path.write_bytes(MINIMAL_CII)
    with path.open(encoding="utf-8") as handle, pytest.raises(InputError, match="binary mode"):
        detect(handle)  # type: ignore[arg-type]


def test_public_entry_points_stay_callable_after_the_cli_is_imported() -> None:
    """The public functions keep their names whatever stage modules load: the modules have
    names of their own (validation, detection, reading, conversion), no function is shadowed."""
    code = (
        "import facturflow.cli, facturflow.reading, facturflow.validation.report\n"
        "import facturflow.detection, facturflow.conversion\n"
        "import facturflow\n"
        "from facturflow import convert, detect, read, validate\n"
        "assert all(callable(f) and not isinstance(f, type(facturflow))\n"
        "           for f in (convert, detect, read, validate))\n"
        "assert facturflow.validate is validate and facturflow.convert is convert\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
