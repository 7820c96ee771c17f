"""PDF structure: a broken cross-reference table (read by pypdf only leniently) is a fatal finding.

pypdf rebuilds a damaged cross-reference table without a word, even with strict=True, so such a
PDF used to be valid whenever its XML was; PDF/A forbids it. qpdf (through pikepdf) reports it.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import facturflow
from facturflow.exitcodes import INVALID, OK
from facturflow.pdf import MAX_STRUCTURE_PROBLEMS, read_pdf, structure_problems

from .helpers import VALID_PDF

STRUCTURE_RULES = {"PDF-XREF", "PDF-STRUCTURE"}


def _startxref_off(data: bytes, by: int = 5) -> bytes:
    """The same PDF with `startxref` pointing `by` bytes past the real table."""
    at = data.rfind(b"startxref")
    tail = re.sub(rb"startxref\s+(\d+)", lambda m: b"startxref\n%d" % (int(m[1]) + by), data[at:])
    return data[:at] + tail


def _entry_off(data: bytes, number: int, by: int = 7) -> bytes:
    """The same PDF with the cross-reference entry of object `number` off by `by` bytes."""
    at = data.rfind(b"\nxref")
    table = data[at:]
    entries = list(re.finditer(rb"(\d{10}) (\d{5}) ([nf])", table))
    entry = entries[number]
    assert entry[3] == b"n"
    moved = b"%010d %s n" % (int(entry[1]) + by, entry[2])
    return data[:at] + table[: entry.start()] + moved + table[entry.end() :]


def _info_object(data: bytes) -> int:
    found = re.search(rb"/Info (\d+) 0 R", data[data.rfind(b"trailer") :])
    assert found, "the fixture has an /Info dictionary"
    return int(found[1])


def _structure(report: facturflow.Report) -> list[facturflow.Finding]:
    return [f for f in report if f.rule in STRUCTURE_RULES]


def test_a_clean_pdf_has_no_structure_finding() -> None:
    data = VALID_PDF.read_bytes()
    assert structure_problems(data) == ()
    report = facturflow.validate(data)
    assert report.ok and _structure(report) == []


def test_a_broken_cross_reference_table_is_a_fatal_pdf_finding(tmp_path: Path) -> None:
    broken = tmp_path / "broken-xref.pdf"
    broken.write_bytes(_startxref_off(VALID_PDF.read_bytes()))
    # pypdf still reads it (leniently) and the XML is valid: only the structure is wrong.
    assert read_pdf(broken.read_bytes()).invoice_attachments()
    report = facturflow.validate(broken)
    assert not report.ok
    (finding,) = _structure(report)
    assert (finding.layer, finding.rule, finding.severity) == ("pdf", "PDF-XREF", "fatal")
    assert "cross-reference table is broken" in finding.message
    assert "xref not found" in finding.message
    assert "BytesIO" not in finding.message  # qpdf's name for the in-memory stream is dropped
    others = [f for f in report if f.severity == "fatal" and f not in _structure(report)]
    assert others == []  # the XML and the Factur-X container rules still pass


def test_an_object_not_where_the_table_says_is_reported(tmp_path: Path) -> None:
    data = VALID_PDF.read_bytes()
    broken = tmp_path / "moved-object.pdf"
    broken.write_bytes(_entry_off(data, _info_object(data)))
    report = facturflow.validate(broken)
    assert not report.ok
    rules = {f.rule for f in _structure(report)}
    assert rules & STRUCTURE_RULES, [f.message for f in report]
    assert all(f.severity == "fatal" for f in _structure(report))


def test_cli_reports_the_broken_table_and_exits_invalid(tmp_path: Path) -> None:
    broken = tmp_path / "broken-xref.pdf"
    broken.write_bytes(_startxref_off(VALID_PDF.read_bytes()))
    for path, code in ((VALID_PDF, OK), (broken, INVALID)):
        result = subprocess.run(
            [sys.executable, "-m", "facturflow", "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "PYTHONPATH": str(Path(facturflow.__file__).parents[1])},
        )
        assert result.returncode == code, result.stdout + result.stderr
        assert ("PDF-XREF" in result.stdout) == (code == INVALID), result.stdout
        assert "Traceback" not in result.stderr


def test_a_large_broken_table_is_checked_in_bounded_time_and_words() -> None:
    """Many objects and a table that points nowhere: qpdf rebuilds it, quickly, and the
    message lists a bounded number of qpdf's complaints."""
    from tests.hostile.builders import pdf

    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: b"<< /Type /Pages /Kids [] /Count 0 >>"}
    objects.update({n: b"<< /N %d >>" % n for n in range(3, 20_000)})
    data = pdf(objects)
    garbled = re.sub(rb"\d{10} 00000 n", b"0000000009 00000 n", data)
    started = time.monotonic()
    problems = structure_problems(garbled)
    assert time.monotonic() - started < 10
    assert problems and len(problems) <= MAX_STRUCTURE_PROBLEMS + 1
    assert structure_problems(data) == ()


def test_unreadable_bytes_give_a_problem_not_an_exception() -> None:
    problems = structure_problems(b"%PDF-1.7\n" + b"garbage " * 100)
    assert problems and all(isinstance(p, str) for p in problems)


def _corpus() -> Path:
    env = os.environ.get("FACTURFLOW_CORPUS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "corpus"


@pytest.mark.corpus
def test_no_valid_corpus_pdf_has_a_structural_fault() -> None:
    """No false alarm: every PDF its source marks valid opens cleanly in qpdf."""
    manifest = _corpus() / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"shared corpus not found at {_corpus()} (set FACTURFLOW_CORPUS)")
    with manifest.open(encoding="utf-8", newline="") as stream:
        rows = [r for r in csv.DictReader(stream, delimiter="\t") if r["path"].endswith(".pdf")]
    valid = [r["path"] for r in rows if r["expected"] == "valid"]
    assert len(valid) > 300
    faulty = {p: structure_problems((_corpus() / p).read_bytes()) for p in valid}
    assert {p: v for p, v in faulty.items() if v} == {}
    # ... while the corpus's damaged PDFs are caught.
    damaged = (_corpus() / "invalid" / "mustang-corruptedV2PDF.pdf").read_bytes()
    assert any("xref" in p for p in structure_problems(damaged))
