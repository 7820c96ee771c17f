"""Extraction writes only where the user asked, whatever the attachment calls itself."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from facturflow.cli import main
from facturflow.errors import InputError
from facturflow.pdf import safe_output_path

from .builders import MINIMAL_CII, pdf_with_attachments


@pytest.mark.parametrize(
    ("name", "leaf"),
    [
        ("factur-x.xml", "factur-x.xml"),
        ("../../x.xml", "x.xml"),
        ("/etc/cron.d/x.xml", "x.xml"),
        ("..\\..\\windows\\x.xml", "x.xml"),
        ("C:\\Windows\\x.xml", "x.xml"),
        ("C:x.xml", "x.xml"),
        ("sub/dir/x.xml", "x.xml"),
        ("..", None),
        ("../..", None),
        ("", None),
        ("/", None),
        ("x\x00.xml", "x.xml"),
        ("\n.xml", "xml"),
    ],
)
def test_safe_output_path_stays_inside(tmp_path: Path, name: str, leaf: str | None) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if leaf is None:
        with pytest.raises(InputError):
            safe_output_path(out, name)
        return
    target = safe_output_path(out, name)
    assert target.parent == out.resolve()
    assert target.name == leaf


def test_safe_output_path_refuses_a_symlink_to_outside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "factur-x.xml").symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        safe_output_path(out, "factur-x.xml")
    assert victim.read_text() == "keep me"


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "name",
    [b"../../x.xml", b"../../../../../../../../tmp/x.xml", b"..\\\\..\\\\x.xml", b"/ABSOLUTE"],
)
def test_cli_extract_never_writes_outside_the_folder(tmp_path: Path, name: bytes) -> None:
    if name == b"/ABSOLUTE":
        name = str(tmp_path / "elsewhere" / "x.xml").encode()
        (tmp_path / "elsewhere").mkdir()
    workspace = tmp_path / "a" / "b"
    out = workspace / "out"
    out.mkdir(parents=True)
    source = workspace / "in.pdf"
    source.write_bytes(pdf_with_attachments([(name, MINIMAL_CII)], flate=True))
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(main, ["extract", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    created = _snapshot(tmp_path) - before
    assert created == {"a/b/out/x.xml"}
    assert (out / "x.xml").read_bytes() == MINIMAL_CII


def test_cli_extract_to_a_named_file(tmp_path: Path) -> None:
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf_with_attachments([(b"../../x.xml", MINIMAL_CII)]))
    target = tmp_path / "chosen.xml"
    result = CliRunner().invoke(main, ["extract", str(source), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == MINIMAL_CII
    assert not (tmp_path.parent / "x.xml").exists()


def test_cli_extract_refuses_a_symlinked_target_without_traceback(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "factur-x.xml").symlink_to(victim)
    source = tmp_path / "in.pdf"
    source.write_bytes(pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)]))
    result = CliRunner().invoke(main, ["extract", str(source), "-o", str(out)])
    assert victim.read_text() == "keep me"
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "payload",
    [b"", b"%PDF-1.7\n", b"<r/>", pdf_with_attachments([(b"photo.jpg", b"x")])],
    ids=["empty", "truncated-pdf", "xml-not-pdf", "no-invoice"],
)
def test_cli_extract_bad_input_exits_2_with_one_line(tmp_path: Path, payload: bytes) -> None:
    source = tmp_path / "bad.pdf"
    source.write_bytes(payload)
    result = CliRunner().invoke(main, ["extract", str(source), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{source}: "), result.output
    assert "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == ["bad.pdf"]
