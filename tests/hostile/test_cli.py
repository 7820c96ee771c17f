"""The real CLI (a child process) on a batch of hostile files: no traceback, exit 2, one line per
bad input naming it, the other files still reported, nothing of one file in another's report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .builders import MINIMAL_CII, MINIMAL_UBL, pdf_with_attachments, stream, zeros_flate

BAD: dict[str, bytes] = {
    "empty.xml": b"",
    "laughs.xml": b'<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>',
    "nul.xml": MINIMAL_CII.replace(b"Conseil", b"Con\x00seil"),
    "not-invoice.xml": b'<order xmlns="urn:example:orders"><id>1</id></order>',
    "long-name.xml": b"<" + b"q" * 30_000 + b"></x>",
    "mislabelled.xml": MINIMAL_CII.replace(b"UTF-8", b"latin1").replace(b"Conseil", b"\xc3\xa9"),
    "junk.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 64,
    "truncated.pdf": pdf_with_attachments([(b"factur-x.xml", MINIMAL_CII)])[:300],
    "bomb.pdf": pdf_with_attachments(
        [(b"factur-x.xml", MINIMAL_CII)],
        extra={10: stream(zeros_flate(512 << 20), b"/Type /EmbeddedFile /Filter /FlateDecode ")},
    ),
    "no-invoice.pdf": pdf_with_attachments([(b"photo.jpg", b"\xff\xd8")]),
    "binary.xml": bytes(range(256)) * 8,
}


def good_files() -> dict[str, bytes]:
    return {
        "a-good.xml": MINIMAL_CII.replace(b"HOSTILE-0001", b"LEAK-MARK-AAA"),
        "b-good.xml": MINIMAL_UBL.replace(b"HOSTILE-UBL-1", b"LEAK-MARK-BBB"),
        "c-good.pdf": pdf_with_attachments(
            [(b"factur-x.xml", MINIMAL_CII.replace(b"HOSTILE-0001", b"LEAK-MARK-CCC"))],
            flate=True,
        ),
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch")
    for name, data in {**BAD, **good_files()}.items():
        (root / name).write_bytes(data)
    (root / "zero.xml").symlink_to("/dev/zero")  # a committed symlink to an endless device
    (root / "dir.xml").mkdir()
    (root / "dir.xml" / "inner.txt").write_text("not an invoice file")
    return root


EXPECTED_BAD = {*BAD, "zero.xml", "missing.xml"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


def _check_one_line_per_bad_input(result: subprocess.CompletedProcess[str], root: Path) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 2, result.stderr
    lines = _error_lines(result.stderr)
    named = {Path(line.split(": error: ", 1)[0]).name for line in lines}
    assert named == EXPECTED_BAD, lines
    assert len(lines) == len(EXPECTED_BAD), "one line per bad input"
    for line in lines:
        assert len(line) < len(str(root)) + 400, line  # bounded, content clipped


def test_detect_batch(batch: Path) -> None:
    result = run_cli("detect", str(batch), str(batch / "zero.xml"), str(batch / "missing.xml"))
    _check_one_line_per_bad_input(result, batch)
    for name in good_files():
        assert f"{batch / name}: " in result.stdout, "the batch went on with the good files"


def test_detect_batch_json(batch: Path) -> None:
    result = run_cli("detect", "--format", "json", str(batch), str(batch / "missing.xml"))
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    rows = json.loads(result.stdout)
    errors = {Path(r["path"]).name for r in rows if "error" in r}
    assert errors == EXPECTED_BAD - {"zero.xml"}  # zero.xml is only named explicitly above
    assert {Path(r["path"]).name for r in rows if "syntax" in r} == set(good_files())


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_validate_batch_json(batch: Path, jobs: str) -> None:
    result = run_cli(
        "validate", "--format", "json", "--jobs", jobs,
        str(batch), str(batch / "zero.xml"), str(batch / "missing.xml"),
    )
    _check_one_line_per_bad_input(result, batch)
    files = json.loads(result.stdout)["files"]
    by_name = {Path(entry["path"]).name: entry for entry in files}
    assert set(by_name) >= EXPECTED_BAD | set(good_files())
    for name in EXPECTED_BAD:
        entry = by_name[name]
        assert entry["valid"] is False
        assert entry["error"] and "internal error" not in entry["error"], entry
    markers = {"a-good.xml": "LEAK-MARK-AAA", "b-good.xml": "LEAK-MARK-BBB",
               "c-good.pdf": "LEAK-MARK-CCC"}
    for name, entry in by_name.items():
        assert entry.get("layers") or entry.get("error"), name
        text = json.dumps(entry, ensure_ascii=False)
        for owner, marker in markers.items():
            if owner != name:
                assert marker not in text, f"{owner}'s content leaked into {name}'s report"
        assert len(text) < 200_000


def test_validate_text_names_each_bad_file(batch: Path) -> None:
    result = run_cli("validate", str(batch), str(batch / "zero.xml"), str(batch / "missing.xml"))
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 2
    for name in EXPECTED_BAD | set(good_files()):
        assert name in result.stdout + result.stderr, name


def test_huge_values_are_not_echoed_unbounded(tmp_path: Path) -> None:
    value = b"Y" * 200_000
    path = tmp_path / "huge-id.xml"
    path.write_bytes(MINIMAL_CII.replace(b"HOSTILE-0001", value))
    result = run_cli("validate", "--format", "json", str(path))
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)["files"]
    for finding in entry["findings"]:
        assert len(finding["message"]) <= 1100, finding["rule"]
    assert len(result.stdout) < 100_000


@pytest.mark.parametrize("name", sorted(BAD))
def test_read_and_convert_refuse_bad_input_cleanly(name: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from facturflow.cli import main

    source = tmp_path / name
    source.write_bytes(BAD[name])
    out = tmp_path / "out.xml"
    for args in (["read", str(source)], ["convert", str(source), "-o", str(out), "--to", "cii"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args[0], result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        mentions = [line for line in result.output.splitlines() if name in line]
        assert len(mentions) == 1, (args[0], result.output)
        assert len(mentions[0]) < len(str(source)) + 400
    assert not out.exists()


def test_validate_text_gives_one_line_per_bad_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from facturflow.cli import main

    names = ["laughs.xml", "nul.xml", "junk.pdf"]
    for name in names:
        (tmp_path / name).write_bytes(BAD[name])
    paths = [str(tmp_path / n) for n in names]
    result = CliRunner().invoke(main, ["validate", "--jobs", "1", *paths])
    assert result.exit_code == 2
    for name in names:
        lines = [line for line in result.output.splitlines() if name in line]
        assert len(lines) == 1 and "error" in lines[0], result.output
        assert len(lines[0].split(": error: ", 1)[-1]) > 10, "the problem is on the same line"
