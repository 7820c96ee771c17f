"""End-to-end: the validate, detect, extract and artefacts commands as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lxml import etree

from .helpers import FIXTURES, VALID_CII, VALID_PDF

VALID = FIXTURES / "valid"
INVALID = FIXTURES / "invalid"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_valid_file_exits_0() -> None:
    result = run("validate", VALID_CII)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VALID" in result.stdout


def test_invalid_file_exits_1_and_names_the_rule() -> None:
    result = run("validate", INVALID / "br-co-10-line-sum.xml")
    assert result.returncode == 1
    assert "BR-CO-10" in result.stdout


def test_unreadable_file_exits_2_without_traceback() -> None:
    result = run("validate", INVALID / "not-well-formed.xml", VALID_CII)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "not-well-formed.xml" in result.stdout + result.stderr


def test_missing_file_exits_2_with_its_name(tmp_path: Path) -> None:
    result = run("validate", tmp_path / "nope.xml")
    assert result.returncode == 2
    assert "nope.xml" in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_unknown_rule_set_is_a_usage_error() -> None:
    result = run("validate", "--rules", "en16931,bogus", VALID_CII)
    assert result.returncode == 2 and "bogus" in result.stderr


def test_json_report_for_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run("validate", "--format", "json", "--output", out, "--jobs", "2", FIXTURES)
    assert result.returncode == 2  # the unreadable fixtures
    data = json.loads(out.read_text())
    by_name = {Path(entry["path"]).name: entry for entry in data["files"]}
    assert by_name["fr-invoice-en16931.xml"]["valid"] is True
    assert by_name["br-co-10-line-sum.xml"]["valid"] is False
    assert "error" in by_name["not-well-formed.xml"]
    assert len(data["files"]) == len(list(FIXTURES.rglob("*.xml")) + list(FIXTURES.rglob("*.pdf")))


def test_junit_and_sarif_outputs_parse(tmp_path: Path) -> None:
    junit = run("validate", "--format", "junit", INVALID / "br-co-10-line-sum.xml", VALID_CII)
    root = etree.fromstring(junit.stdout.encode())
    assert root.xpath("count(//testcase)") == 2 and float(str(root.xpath("count(//failure)"))) >= 1
    sarif = json.loads(
        run("validate", "--format", "sarif", INVALID / "br-co-10-line-sum.xml").stdout
    )
    assert sarif["version"] == "2.1.0"
    assert any(r["ruleId"] == "BR-CO-10" for r in sarif["runs"][0]["results"])


def test_detect_json() -> None:
    result = run("detect", "--format", "json", VALID_PDF, VALID_CII)
    assert result.returncode == 0
    assert json.loads(result.stdout) == [
        {"path": str(VALID_PDF), "container": "pdf", "syntax": "cii", "profile": "en16931"},
        {"path": str(VALID_CII), "container": "xml", "syntax": "cii", "profile": "en16931"},
    ]


def test_extract_gives_back_the_embedded_xml(tmp_path: Path) -> None:
    import facturx

    expected = facturx.get_xml_from_pdf(VALID_PDF.read_bytes(), check_xsd=False)[1]
    out = tmp_path / "invoice.xml"
    assert run("extract", VALID_PDF, "-o", out).returncode == 0
    assert out.read_bytes() == expected
    assert run("extract", VALID_PDF, "-o", tmp_path).returncode == 0
    assert (tmp_path / "factur-x.xml").read_bytes() == expected


def test_extract_from_a_pdf_without_xml_exits_2() -> None:
    result = run("extract", INVALID / "pdf-without-xml.pdf")
    assert result.returncode == 2 and "no invoice XML" in result.stderr


def test_artefacts_lists_pinned_files() -> None:
    result = run("artefacts", "--format", "json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["problems"] == []
    assert {"EN16931-UBL-validation.xslt", "BR-FR-Flux2-Schematron-CII.xslt"} <= {
        row["name"] for row in data["artefacts"]
    }


def test_a_stylesheet_runtime_error_reaches_the_report_not_the_terminal(tmp_path: Path) -> None:
    # Two buyer electronic addresses make the official stylesheets raise XPTY0004, which Saxon
    # also prints on the native stderr unless facturflow silences it.
    doubled = VALID_CII.read_bytes().replace(
        b'<ram:URIID schemeID="0225">518309620</ram:URIID>',
        b'<ram:URIID schemeID="0225">518309620</ram:URIID>'
        b'<ram:URIID schemeID="EM">buyer@example.com</ram:URIID>',
    )
    assert doubled != VALID_CII.read_bytes()
    path = tmp_path / "two-buyer-addresses.xml"
    path.write_bytes(doubled)
    result = run("validate", path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "LAYER-FAILED" in result.stdout and "more than one item" in result.stdout
    assert "Type error" not in result.stderr and "more than one item" not in result.stderr
