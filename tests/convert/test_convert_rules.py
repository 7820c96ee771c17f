"""Which rules `convert` checks its output with (issue 15, part B): the same scope-aware choice as
`validate` by default, the French scope judged on the source, and `--rules` / `--french-rules` /
`--as-of` (`rules=`, `french_rules=`, `as_of=`) for an explicit choice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from convert_helpers import CII_EN16931, UBL_EN16931, corpus_dir

from facturflow.cli import main
from facturflow.conversion import ConversionRejected, convert
from facturflow.errors import UnknownRuleSetError
from facturflow.validation import validate


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert not (result.exception and not isinstance(result.exception, SystemExit)), result.output
    return result.exit_code, result.output


def _french_by_cius_only() -> bytes:
    """The UBL fixture made French by its CIUS alone: a Belgian seller, no business process
    (BT-23), BT-24 still the French `...en16931-ctc-fr`. Its CII has the plain EN 16931 BT-24, so
    judged by its own terms the output would fall out of the French scope."""
    data = UBL_EN16931.read_bytes()
    data = data.replace(b"<cbc:IdentificationCode>FR</cbc:IdentificationCode>",
                        b"<cbc:IdentificationCode>BE</cbc:IdentificationCode>", 1)
    data = re.sub(rb"<cbc:ProfileID>[^<]*</cbc:ProfileID>", b"", data)
    assert b"urn.cpro.gouv.fr:1p0:en16931-ctc-fr" in data and b"ProfileID" not in data
    return data


# -- the rules of the output: --rules, --french-rules, --as-of -----------------------------------


def test_the_default_check_refuses_the_scheme_less_siret_in_ubl_naming_a_conversion_defect(
    tmp_path: Path,
) -> None:
    out = tmp_path / "x.xml"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out), "--to", "ubl")
    assert code == 1, output
    assert "BR-FR-CO-10_BT-29-1" in output and "a conversion defect" in output
    assert 'why: a party identifier without a scheme' in output  # and what to do about it
    assert 'schemeID="0009"' in output and "--french-rules warning" in output
    assert not out.exists()


def test_rules_picks_the_rules_the_output_is_checked_with(tmp_path: Path) -> None:
    out = tmp_path / "x.xml"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out), "--to", "ubl",
                        "--rules", "xsd,en16931")
    assert code == 0, output
    report = validate(out, "xsd,en16931")
    assert report.ok and set(report.rule_sets) == {"xsd", "en16931"}
    # the library took rules= already; the same choice gives the same bytes
    assert convert(CII_EN16931, to="ubl", rules="xsd,en16931").data == out.read_bytes()


def test_rules_plus_name_adds_to_the_default_and_still_refuses(tmp_path: Path) -> None:
    out = tmp_path / "x.xml"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out), "--to", "ubl",
                        "--rules", "+xrechnung")
    assert code == 1, output
    assert "BR-FR-CO-10_BT-29-1" in output  # the default French rules still run
    assert "BR-DE-" in output  # and the XRechnung rules were forced on this French invoice


@pytest.mark.parametrize("rules", ["nope", "", "en16931,bogus"])
def test_a_bad_rules_is_a_usage_error_of_one_line(tmp_path: Path, rules: str) -> None:
    out = tmp_path / "x.pdf"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out), "--rules", rules)
    assert code == 2, output
    assert output.startswith("error: --rules") and output.count("\n") == 1, output
    assert "Traceback" not in output and not out.exists()
    with pytest.raises(UnknownRuleSetError):
        convert(CII_EN16931, to="facturx", rules=rules)


def test_french_rules_warning_turns_the_french_refusal_into_warnings(tmp_path: Path) -> None:
    out = tmp_path / "x.xml"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out), "--to", "ubl",
                        "--french-rules", "warning")
    assert code == 0, output
    assert out.is_file()
    result = convert(CII_EN16931, to="ubl", french_rules="warning")
    assert result.report.ok
    assert {"BR-FR-CO-10_BT-29-1", "BR-FR-CO-10_BT-46-1"} <= {
        f.rule for f in result.report.findings if f.severity == "warning"
    }
    assert result.data == out.read_bytes()


def test_as_of_picks_the_french_build_in_force_that_day(tmp_path: Path) -> None:
    # the built-in calendar enforces the fatal build from 2026-09-01; before, the warning build
    code, output = _run("convert", str(CII_EN16931), "-o", str(tmp_path / "x.xml"), "--to",
                        "ubl", "--as-of", "2026-03-01")
    assert code == 0, output
    code, output = _run("convert", str(CII_EN16931), "-o", str(tmp_path / "y.xml"), "--to",
                        "ubl", "--as-of", "2026-10-01")
    assert code == 1 and "BR-FR-CO-10" in output, output
    assert convert(CII_EN16931, to="ubl", as_of="2026-03-01").report.ok


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--as-of", "yesterday"), "error: --as-of 'yesterday'"),
        (("--as-of", "2026-03-01", "--french-rules", "fatal"), "give one or the other"),
    ],
)
def test_a_bad_as_of_is_a_usage_error(tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    code, output = _run("convert", str(CII_EN16931), "-o", str(tmp_path / "x.pdf"), *args)
    assert code == 2 and said in output and "Traceback" not in output, output


def test_the_rules_reach_the_workers_of_a_folder_conversion(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(2):
        (folder / f"f{n}.xml").write_bytes(CII_EN16931.read_bytes())
    code, output = _run("convert", str(folder), "-o", str(tmp_path / "out"), "--to", "ubl",
                        "--rules", "xsd,en16931", "--jobs", "2")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.xml", "f1.xml"]


# -- the scope of the output is the source's -------------------------------------------------


def test_a_french_invoice_stays_in_the_french_scope_when_its_cius_id_is_not_carried(
    tmp_path: Path,
) -> None:
    source = _french_by_cius_only()
    assert not validate(source).ok  # BR-FR-08: a French invoice declares its BT-23
    with pytest.raises(ConversionRejected) as caught:
        convert(source, to="cii")
    error = caught.value
    assert "fr-ctc" in error.report.rule_sets  # judged French although its BT-24 is plain
    assert any(r.startswith("BR-FR-08") for r in error.source_defects)
    assert "a source defect" in error.message
    src = tmp_path / "be.xml"
    src.write_bytes(source)
    code, output = _run("convert", str(src), "-o", str(tmp_path / "x.xml"), "--to", "cii")
    assert code == 1 and "BR-FR-08" in output and "a source defect" in output, output


def test_a_non_french_invoice_is_not_judged_by_the_french_rules(tmp_path: Path) -> None:
    source = _french_by_cius_only().replace(
        b"urn:cen.eu:en16931:2017#compliant#urn.cpro.gouv.fr:1p0:en16931-ctc-fr",
        b"urn:cen.eu:en16931:2017")
    result = convert(source, to="cii")
    assert result.report.ok and "fr-ctc" not in result.report.rule_sets


def _kosit(name: str) -> Path:
    path = corpus_dir() / "ubl" / name
    if not path.is_file():
        pytest.skip(f"shared corpus file {path} not found (set FACTURFLOW_CORPUS)")
    return path


@pytest.mark.corpus
def test_an_xrechnung_keeps_its_cius_and_its_rules_in_cii_but_not_in_factur_x() -> None:
    source = _kosit("kosit-01.01a-INVOICE_ubl.xml")
    cii = convert(source, to="cii")
    assert "xrechnung" in cii.report.rule_sets  # BT-24 still declares XRechnung
    assert "xrechnung" in (cii.report.selection or {})["scope"]["specification_id"]
    facturx = convert(source, to="facturx")
    # Factur-X EN 16931 has no XRECHNUNG level: the output is an EN 16931 invoice, BR-DE not run
    assert "xrechnung" not in facturx.report.rule_sets
    assert facturx.profile == "en16931"


def test_a_french_rule_named_differently_in_the_two_syntaxes_is_still_a_source_defect(
    tmp_path: Path,
) -> None:
    # The French rules are named per syntax ('BR-FR-05_BT-22-1' in one, 'BR-FR-05_BT-22_PMT' in
    # the other): a note missing from the source fails both, under two names, one business rule.
    source = re.sub(rb"<cbc:Note>#PMT#[^<]*</cbc:Note>", b"", UBL_EN16931.read_bytes())
    with pytest.raises(ConversionRejected) as caught:
        convert(source, to="cii")
    error = caught.value
    assert error.source_defects and not error.conversion_defects, error.message
    assert all(r.startswith("BR-FR-05") for r in error.source_defects)
    assert "a source defect" in error.message and "conversion defect" not in error.message
    src = tmp_path / "no-pmt.xml"
    src.write_bytes(source)
    code, output = _run("convert", str(src), "-o", str(tmp_path / "x.xml"), "--to", "cii")
    assert code == 1 and "BR-FR-05" in output and "a source defect" in output, output
    assert "conversion defect" not in output
