"""`facturflow convert` end to end: a folder on a process pool, the summary, exit codes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from convert_helpers import CII_CREDIT_NOTE, CII_EN16931, CII_EXTENDED_CTC_FR, INVALID

from facturflow.cli import main
from facturflow.detection import detect
from facturflow.exitcodes import INTERRUPTED
from facturflow.facturx import extract_xml
from facturflow.validation import validate


def _folder(tmp_path: Path, *files: Path) -> Path:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    for i, path in enumerate(files):
        shutil.copy(path, (source / "sub" if i == 0 else source) / path.name)
    return source


def test_a_folder_converts_to_factur_x_pdfs_that_validate(tmp_path: Path) -> None:
    source = _folder(tmp_path, CII_EN16931, CII_CREDIT_NOTE, CII_EXTENDED_CTC_FR)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.pdf"))
    assert made == ["fr-creditnote-en16931.pdf", "fr-invoice-cii-extended-ctc-fr.pdf",
                    "sub/fr-invoice-en16931.pdf"]
    pdf = (out / "sub" / "fr-invoice-en16931.pdf").read_bytes()
    assert extract_xml(pdf) == CII_EN16931.read_bytes()
    assert validate(pdf).ok
    assert "converted 3 of 3; 0 failed" in result.output
    assert not list(out.rglob(".*.part"))


def test_failures_are_summarised_with_their_reason_and_exit_1(tmp_path: Path) -> None:
    source = _folder(tmp_path, CII_EN16931, INVALID / "br-co-10-line-sum.xml")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(out), "-j", "2"])
    assert result.exit_code == 1, result.output
    assert "converted 1 of 2; 1 failed" in result.output
    assert "br-co-10-line-sum.xml: refused:" in result.output
    assert "BR-CO-10" in result.output
    assert not (out / "br-co-10-line-sum.pdf").exists()
    assert (out / "sub" / "fr-invoice-en16931.pdf").is_file()


def test_an_unreadable_input_exits_2(tmp_path: Path) -> None:
    source = _folder(tmp_path, CII_EN16931, INVALID / "not-an-invoice.xml")
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "not-an-invoice.xml: unreadable:" in result.output


def test_one_file_to_cii_into_an_existing_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(
        main, ["convert", str(CII_EN16931), "-o", str(out), "--to", "cii"]
    )
    assert result.exit_code == 0, result.output
    target = out / "fr-invoice-en16931.xml"
    assert target.read_bytes() == CII_EN16931.read_bytes()
    assert detect(target).syntax == "cii"


def test_wrapping_a_given_visual_pdf(tmp_path: Path, plain_pdf: bytes) -> None:
    visual = tmp_path / "visual.pdf"
    visual.write_bytes(plain_pdf)
    target = tmp_path / "facture.pdf"
    result = CliRunner().invoke(
        main, ["convert", str(CII_EN16931), "-o", str(target), "--pdf", str(visual)]
    )
    assert result.exit_code == 0, result.output
    assert extract_xml(target.read_bytes()) == CII_EN16931.read_bytes()


def test_usage_errors_exit_2(tmp_path: Path, plain_pdf: bytes) -> None:
    visual = tmp_path / "visual.pdf"
    visual.write_bytes(plain_pdf)
    source = _folder(tmp_path, CII_EN16931)
    runner = CliRunner()
    folder_with_pdf = runner.invoke(
        main, ["convert", str(source), "-o", str(tmp_path / "o"), "--pdf", str(visual)]
    )
    assert folder_with_pdf.exit_code == 2
    pdf_with_cii = runner.invoke(
        main, ["convert", str(CII_EN16931), "-o", str(tmp_path / "x.xml"), "--to", "cii",
               "--pdf", str(visual)]
    )
    assert pdf_with_cii.exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(main, ["convert", str(empty), "-o", str(tmp_path / "o2")]).exit_code == 2


def test_an_input_is_never_overwritten(tmp_path: Path) -> None:
    copy = tmp_path / "f.xml"
    shutil.copy(CII_EN16931, copy)
    result = CliRunner().invoke(main, ["convert", str(copy), "-o", str(copy), "--to", "cii"])
    assert result.exit_code == 2
    assert copy.read_bytes() == CII_EN16931.read_bytes()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_exits_130_and_lists_the_finished_conversions(tmp_path: Path, jobs: str) -> None:
    """A real process group gets SIGINT mid-batch (as Ctrl-C does): exit 130, no traceback,
    and every output listed on stdout is there, whole; nothing else is written."""
    source = tmp_path / "in"
    source.mkdir()
    for number in range(40):
        shutil.copy(CII_EN16931, source / f"inv-{number:02}.xml")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "facturflow", "convert", str(source), "-o", str(out), "-j", jobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(out.glob("inv-*.pdf"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == INTERRUPTED, stdout + stderr
    assert "Traceback" not in stderr and "interrupted:" in stderr
    listed = [line.split(" -> ")[1] for line in stdout.splitlines() if " -> " in line]
    assert 2 <= len(listed) < 40
    assert sorted(listed) == sorted(str(p) for p in out.glob("inv-*.pdf"))
    assert not list(out.glob(".*.part"))
    for target in listed:
        assert extract_xml(Path(target).read_bytes()) == CII_EN16931.read_bytes()


def test_an_output_that_is_a_link_or_a_special_file_is_written_through_not_replaced(
    tmp_path: Path
) -> None:
    # A symbolic link stays a link (the file it points to gets the PDF); the file's mode stays.
    real = tmp_path / "real.pdf"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link.pdf"
    link.symlink_to(real)
    result = CliRunner().invoke(main, ["convert", str(CII_EN16931), "-o", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and real.read_bytes().startswith(b"%PDF")
    assert real.stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".*.part"))
    # A device is written to, never replaced by a regular file (/dev/full: ENOSPC, one line).
    full = Path("/dev/full")
    if not full.exists() or not full.is_char_device():
        pytest.skip("no /dev/full here")
    from facturflow.outputs import write_bytes_atomically

    with pytest.raises(OSError):
        write_bytes_atomically(full, b"x")
    assert full.is_char_device()
