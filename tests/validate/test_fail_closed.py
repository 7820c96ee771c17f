"""Promises kept at the edges of `validate`: the rule selection fails closed, a file over the
time limit is invalid (not unreadable), --output is checked before the batch, and Ctrl-C reports
what finished (exit 130)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from facturflow import validate, validate_many
from facturflow.errors import EmptyRuleSelectionError, RulePackError, UnknownRuleSetError
from facturflow.exitcodes import INTERRUPTED, INVALID, OK, USAGE
from facturflow.rules import BUILTIN_RULE_SETS
from facturflow.validation.report import LAYER_FAILED, RULES_NOT_APPLICABLE

from .helpers import FIXTURES, VALID_CII, VALID_PDF, VALID_UBL, schematron_xslt
from .test_rules_and_packs import make_pack

INVALID_CII = FIXTURES / "invalid" / "br-co-10-line-sum.xml"
EXTENDED_CII = FIXTURES / "valid" / "fr-invoice-cii-extended-ctc-fr.xml"
VALID_NAMES = "valid names: " + ", ".join([*BUILTIN_RULE_SETS, "all"])
# A stylesheet that runs for hours: it stands in for a pathological document.
SLOW_XSLT = (
    '<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
    '<xsl:template match="/"><out><xsl:value-of select="sum(for $i in 1 to 300000, '
    '$j in 1 to 300000 return ($i * $j) mod 7)"/></out></xsl:template></xsl:stylesheet>'
)


def run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def slow_pack(folder: Path) -> Path:
    """A rule pack that never finishes on UBL invoices (and does not apply to CII)."""
    return make_pack(
        folder,
        'name = "slow"\n[[schematron]]\nfile = "rules.xslt"\nsyntaxes = ["ubl-invoice"]\n',
        SLOW_XSLT,
    )


def selection_findings(report: object) -> list[tuple[str, str]]:
    return [
        (f.severity, f.message)
        for f in getattr(report, "findings", ())
        if f.rule == RULES_NOT_APPLICABLE
    ]


# --- the selection: empty or unknown is a usage error -------------------------------------------


@pytest.mark.parametrize("rules", ["", ",", " , ", []])
def test_an_empty_selection_raises_in_the_library(rules: str | list[str]) -> None:
    with pytest.raises(EmptyRuleSelectionError, match="empty rule selection") as caught:
        validate(INVALID_CII, rules=rules)
    assert isinstance(caught.value, UnknownRuleSetError) and isinstance(caught.value, ValueError)
    assert VALID_NAMES in str(caught.value)
    with pytest.raises(EmptyRuleSelectionError):
        list(validate_many([INVALID_CII], rules=rules))


def test_a_misspelled_set_raises_unknown_rule_set_not_a_rule_pack_error() -> None:
    with pytest.raises(UnknownRuleSetError, match="unknown rule set 'en1693'") as caught:
        validate(VALID_CII, rules="xsd,en1693")
    assert not isinstance(caught.value, RulePackError)
    assert "rule pack" not in str(caught.value) and VALID_NAMES in str(caught.value)


@pytest.mark.parametrize("rules", ["+", "xsd,+", ["+ "], "+,"])
def test_a_bare_plus_names_no_rule_set(rules: str | list[str]) -> None:
    # '+' alone (an empty "+$VAR") used to run the default silently, as if nothing were wrong.
    with pytest.raises(UnknownRuleSetError, match=r"'\+' names no rule set") as caught:
        validate(INVALID_CII, rules=rules)
    assert VALID_NAMES in str(caught.value)


@pytest.mark.parametrize("rules", ["", ",", "bogus", "xsd,en1693", "XSD", "+", "xsd, + "])
def test_cli_empty_or_unknown_rules_exit_2_with_one_line(rules: str) -> None:
    result = run("validate", "--rules", rules, INVALID_CII)
    assert result.returncode == USAGE, result.stdout + result.stderr
    assert result.stdout == ""  # no report: nothing was validated
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("error: --rules") and VALID_NAMES in lines[0]


# --- a selection that leaves a file unjudged ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rules", "why"),
    [
        (INVALID_CII, "pdf", "pdf: applies to PDF inputs"),
        (VALID_CII, "extended-ctc-fr", "extended-ctc-fr: applies to the EXTENDED-CTC-FR profile"),
        (VALID_UBL, "facturx", "facturx: applies to Factur-X CII invoices only"),
        (VALID_CII, ["pdf", "extended-ctc-fr"], "(this invoice is EN16931)"),
    ],
)
def test_a_selection_that_does_not_apply_makes_the_file_invalid(
    path: Path, rules: str | list[str], why: str
) -> None:
    report = validate(path, rules=rules)
    assert not report.ok
    [(severity, message)] = selection_findings(report)
    assert severity == "fatal" and why in message
    assert not any(layer.layer in ("xsd", "schematron") for layer in report.layers)


def test_sets_that_apply_judge_the_file_and_the_others_are_named() -> None:
    report = validate(VALID_CII, rules="xsd,pdf")
    assert report.ok  # judged by its XSD
    [(severity, message)] = selection_findings(report)
    assert severity == "warning" and "pdf: applies to PDF inputs" in message
    assert not validate(INVALID_CII, rules="en16931,pdf").ok  # the applying set still decides


def test_the_default_and_all_stay_silent_about_sets_that_do_not_apply() -> None:
    for rules in (None, "all"):
        report = validate(VALID_CII, rules=rules)
        assert report.ok and selection_findings(report) == []


def test_pdf_rules_alone_judge_a_pdf() -> None:
    report = validate(VALID_PDF, rules="pdf")
    assert selection_findings(report) == []
    assert any(layer.layer == "pdf" and layer.ran for layer in report.layers)


def test_a_rule_pack_named_alone_that_does_not_apply_leaves_nothing_valid(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path / "acme",
        'name = "acme"\n[[schematron]]\nfile = "rules.xslt"\nsyntaxes = ["cii"]\n',
        schematron_xslt("ACME-01", "true()"),
    )
    report = validate(VALID_UBL, rules="acme", rule_packs=[pack])
    [(severity, message)] = selection_findings(report)
    assert not report.ok and severity == "fatal" and "acme: applies to cii only" in message
    # Loaded beside the default selection, a pack that does not apply is no news.
    assert selection_findings(validate(VALID_UBL, rule_packs=[pack])) == []


def test_the_selection_reaches_worker_processes() -> None:
    reports = list(validate_many([VALID_CII, VALID_UBL], rules="pdf", jobs=2, timeout=120))
    assert [r.ok for r in reports] == [False, False]
    assert all(selection_findings(r)[0][0] == "fatal" for r in reports)
    (split,) = validate_many([VALID_CII], rules="xsd,pdf", jobs=2, timeout=120)
    assert split.ok and selection_findings(split)[0][0] == "warning"


def test_cli_rules_that_do_not_apply_exit_1_in_every_format(tmp_path: Path) -> None:
    for rules in ("pdf", "extended-ctc-fr"):
        result = run("validate", "--rules", rules, VALID_CII)
        assert result.returncode == INVALID, result.stdout + result.stderr
        assert "INVALID" in result.stdout and RULES_NOT_APPLICABLE in result.stdout
    result = run("validate", "--rules", "extended-ctc-fr", EXTENDED_CII)
    assert result.returncode == OK, result.stdout + result.stderr
    for fmt in ("json", "junit", "sarif"):
        out = tmp_path / f"report.{fmt}"
        result = run("validate", "--rules", "pdf", "--format", fmt, "--output", out, VALID_CII)
        assert result.returncode == INVALID, result.stderr
        text = out.read_text(encoding="utf-8")
        assert RULES_NOT_APPLICABLE in text and "applies to PDF inputs" in text
        if fmt == "junit":
            assert etree.fromstring(text.encode()).find(".//failure") is not None
        else:
            data = json.loads(text)
            if fmt == "json":
                assert data["files"][0]["valid"] is False
            else:
                assert data["runs"][0]["results"][0]["level"] == "error"


# --- --timeout ----------------------------------------------------------------------------------


def test_a_file_stopped_at_the_time_limit_is_invalid_layer_failed_exit_1(tmp_path: Path) -> None:
    pack = slow_pack(tmp_path / "slow")
    result = run(
        "validate", "--timeout", "3", "--rules", "xsd", "--rule-pack", pack, VALID_UBL, VALID_CII
    )
    assert result.returncode == INVALID, result.stdout + result.stderr
    assert f"{VALID_UBL}: INVALID" in result.stdout and LAYER_FAILED in result.stdout
    assert "did not finish within 3 s" in result.stdout and "UNREADABLE" not in result.stdout
    assert f"{VALID_CII}: VALID" in result.stdout


# --- --output -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("folder", "is a folder"),
        ("a-file/report.json", "cannot write"),
        ("a-file/sub/report.json", "cannot write"),
        # Unwritable even for root (the tests may run as root, where permissions do not bite).
        pytest.param(
            "/sys/facturflow-report.json",
            "cannot write",
            marks=pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs"),
        ),
    ],
)
def test_an_unusable_output_is_refused_before_the_batch(
    tmp_path: Path, target: str, why: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("x")
    pack = slow_pack(tmp_path / "slow")
    started = time.monotonic()
    # The UBL file would keep the batch busy for the whole default --timeout (300 s).
    result = run(
        "validate", "--rule-pack", pack, "--format", "json", "--output", tmp_path / target,
        VALID_UBL,
    )
    assert time.monotonic() - started < 60  # refused before validating anything
    assert result.returncode == USAGE, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and "Traceback" not in result.stderr


def test_the_output_replaces_a_previous_report_whole(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("previous")
    result = run("validate", "--format", "json", "--output", out, VALID_CII)
    assert result.returncode == OK, result.stderr
    assert json.loads(out.read_text())["files"][0]["valid"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary left


# --- Ctrl-C -------------------------------------------------------------------------------------


def interrupt_after(args: list[str | Path], seconds: float) -> subprocess.CompletedProcess[str]:
    """Run the CLI in its own process group and press Ctrl-C (SIGINT to the group) later."""
    process = subprocess.Popen(
        [sys.executable, "-m", "facturflow", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(seconds)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def stuck_batch(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """Five CII invoices that validate quickly, then a UBL one that never finishes."""
    folder = tmp_path / "in"
    folder.mkdir()
    fast = []
    for number in range(5):
        fast.append(folder / f"a-{number}.xml")
        shutil.copy(VALID_CII, fast[-1])
    shutil.copy(VALID_UBL, folder / "z-ubl.xml")
    return folder, slow_pack(tmp_path / "slow"), fast


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_ctrl_c_exits_130_and_reports_the_finished_files(
    tmp_path: Path, stuck_batch: tuple[Path, Path, list[Path]], fmt: str
) -> None:
    folder, pack, fast = stuck_batch
    out = tmp_path / f"report.{fmt}"
    args: list[str | Path] = ["validate", "--jobs", "1", "--rules", "xsd", "--rule-pack", pack]
    args += ["--format", fmt, *(["--output", out] if fmt == "json" else []), folder]
    result = interrupt_after(args, 15)
    assert result.returncode == INTERRUPTED, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "interrupted: 5 of 6 files validated and reported" in result.stderr
    if fmt == "json":
        files = json.loads(out.read_text(encoding="utf-8"))["files"]
        assert [f["path"] for f in files] == [str(p) for p in fast]
        assert all(f["valid"] for f in files)
    else:
        for path in fast:
            assert f"{path}: VALID" in result.stdout
        assert "z-ubl.xml" not in result.stdout


def test_ctrl_c_reports_files_finished_behind_one_still_running(
    tmp_path: Path, stuck_batch: tuple[Path, Path, list[Path]]
) -> None:
    """The never-ending file comes first: one worker is stuck on it, the other validates the
    rest; Ctrl-C still reports those (after the gap), in a complete JSON report."""
    folder, pack, fast = stuck_batch
    (folder / "z-ubl.xml").rename(folder / "0-ubl.xml")
    out = tmp_path / "report.json"
    result = interrupt_after(
        ["validate", "--jobs", "2", "--rules", "xsd", "--rule-pack", pack, "--format", "json",
         "--output", out, folder],
        20,
    )
    assert result.returncode == INTERRUPTED, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    files = json.loads(out.read_text(encoding="utf-8"))["files"]
    assert [f["path"] for f in files] == [str(p) for p in fast]
