"""`validate --report FORMAT[:PATH]` (several reports from one run) and `validate -` (stdin),
through the command line as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import junitparser

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
INVALID = FIXTURES / "invalid" / "br-co-10-line-sum.xml"
VALID = FIXTURES / "valid" / "fr-invoice-en16931.xml"
PDF = FIXTURES / "valid" / "fr-invoice-en16931.pdf"


def run(*args: str | Path, stdin: bytes | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *map(str, args)],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=600,
        check=False,
        env=env,
        cwd=cwd,
    )


def test_one_run_writes_text_json_junit_and_sarif(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        "validate", INVALID, VALID,
        "--report", "text",
        "--report", f"json:{out / 'report.json'}",  # a missing folder is created
        "--report", f"junit:{tmp_path / 'junit.xml'}",
        "--report", f"sarif:{tmp_path / 'report.sarif'}",
    )
    assert result.returncode == 1, result.stderr
    text = result.stdout.decode()
    assert "br-co-10-line-sum.xml: INVALID" in text and "verdict" in text
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["summary"]["invalid"] == 1 and data["summary"]["valid"] == 1
    suite = junitparser.JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    assert sum(1 for s in suite for _ in s) == 2
    sarif = json.loads((tmp_path / "report.sarif").read_text(encoding="utf-8"))
    assert "BR-CO-10" in {r["ruleId"] for r in sarif["runs"][0]["results"]}
    # No temporary files left beside the reports.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "out", "report.sarif"]


def test_format_and_output_still_work_beside_report(tmp_path: Path) -> None:
    result = run(
        "validate", INVALID, "--format", "json", "--output", tmp_path / "a.json",
        "--report", f"sarif:{tmp_path / 'b.sarif'}",
    )
    assert result.returncode == 1, result.stderr
    assert json.loads((tmp_path / "a.json").read_text())["files"][0]["valid"] is False
    assert json.loads((tmp_path / "b.sarif").read_text())["version"] == "2.1.0"
    assert result.stdout == b""  # both reports went to files


def test_report_mistakes_are_usage_errors_before_any_work(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    blocked = tmp_path / "file"
    blocked.write_text("x")
    cases = {
        ("--report", "html2:x"): "unknown format 'html2'",
        ("--report", "json", "--report", "text"): "only one report can go to standard output",
        ("--report", "json:"): "give a file after ':'",
        ("--report", f"json:{folder}"): "is a folder",
        ("--report", f"json:{blocked / 'r.json'}"): "cannot write",
        ("--report", f"json:{tmp_path / 'r'}", "--report", f"sarif:{tmp_path / 'r'}"):
            "already the file of",
    }
    for args, expected in cases.items():
        result = run("validate", VALID, *args)
        err = result.stderr.decode()
        assert result.returncode == 2, (args, err)
        assert expected in err and "Traceback" not in err, (args, err)
        assert result.stdout == b"", args  # refused before validating anything
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "file"]


def test_validate_reads_one_invoice_from_stdin(tmp_path: Path) -> None:
    result = run("validate", "-", "--summary", stdin=INVALID.read_bytes())
    assert result.returncode == 1, result.stderr
    assert result.stdout.decode().startswith("<stdin>: INVALID  (xml, cii, en16931)")
    pdf = run("validate", "-", "--report", f"junit:{tmp_path / 'j.xml'}",
              "--report", f"json:{tmp_path / 'r.json'}", stdin=PDF.read_bytes())
    assert pdf.returncode == 0, pdf.stderr
    entry = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert entry["path"] == "<stdin>" and entry["container"] == "pdf"
    assert entry["attachment"] == "factur-x.xml"
    empty = run("validate", "-")
    assert empty.returncode == 2 and b"<stdin>: UNREADABLE" in empty.stdout
    twice = run("validate", "-", "-", stdin=b"x")
    assert twice.returncode == 2 and b"more than once" in twice.stderr


def test_ctrl_c_writes_the_finished_files_to_every_report(tmp_path: Path) -> None:
    """Five quick files, then one that never finishes; Ctrl-C: each report has the five."""
    import shutil

    from validate.helpers import VALID_UBL
    from validate.test_fail_closed import interrupt_after, slow_pack

    folder = tmp_path / "in"
    folder.mkdir()
    fast = [folder / f"a-{n}.xml" for n in range(5)]
    for path in fast:
        shutil.copy(VALID, path)
    shutil.copy(VALID_UBL, folder / "z-ubl.xml")
    pack = slow_pack(tmp_path / "slow")
    args: list[str | Path] = ["validate", "--jobs", "1", "--rules", "xsd", "--rule-pack", pack]
    args += ["--report", f"json:{tmp_path / 'r.json'}", "--report", f"junit:{tmp_path / 'j.xml'}",
             "--report", "text", folder]
    result = interrupt_after(args, 15)
    assert result.returncode == 130, result.stdout + result.stderr
    assert "interrupted: 5 of 6 files validated and reported" in result.stderr
    files = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["files"]
    assert [f["path"] for f in files] == [str(p) for p in fast]
    suite = junitparser.JUnitXml.fromfile(str(tmp_path / "j.xml"))
    assert sorted(case.name for s in suite for case in s) == sorted(str(p) for p in fast)
    assert all(f"{p}: VALID" in result.stdout for p in fast)
