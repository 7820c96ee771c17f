"""Where `convert` writes, and how it says no: --to and the output extension agree, a bad --pdf
is named, no two inputs share an output, and convert, extract and validate treat folders and
write errors alike (missing folders created; an unwritable output is one line, exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from convert_helpers import CII_EN16931, FACTURX_PDF, INVALID

from facturflow.cli import main
from facturflow.conversion import ConversionRejected, VisualPDFError, convert
from facturflow.detection import detect


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert not (result.exception and not isinstance(result.exception, SystemExit)), result.output
    return result.exit_code, result.output


def test_an_xml_output_without_to_is_refused_rather_than_filled_with_a_pdf(
    tmp_path: Path,
) -> None:
    out = tmp_path / "x.xml"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out))
    assert code == 2, output
    assert "--to cii or --to ubl" in output
    assert not out.exists()


@pytest.mark.parametrize(("to", "name"), [("facturx", "x.xml"), ("cii", "x.pdf"),
                                          ("ubl", "x.pdf")])
def test_an_output_extension_that_contradicts_to_is_refused(
    tmp_path: Path, to: str, name: str
) -> None:
    out = tmp_path / name
    code, output = _run("convert", str(CII_EN16931), "-o", str(out), "--to", to)
    assert code == 2, output
    assert f"--to {to} writes a" in output
    assert not out.exists()


def test_to_is_inferred_from_a_pdf_output(tmp_path: Path) -> None:
    out = tmp_path / "facture.PDF"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out))
    assert code == 0, output
    assert detect(out).container == "pdf"


def test_an_output_ending_in_a_slash_is_a_folder_created_on_demand(tmp_path: Path) -> None:
    code, output = _run("convert", str(CII_EN16931), "-o", f"{tmp_path}/new/deep/", "--to",
                        "cii")
    assert code == 0, output
    assert (tmp_path / "new" / "deep" / "fr-invoice-en16931.xml").is_file()


def test_a_bad_visual_pdf_is_named_as_such(tmp_path: Path) -> None:
    visual = tmp_path / "visual.pdf"
    visual.write_bytes(b"%PDF-1.7 this is not really a PDF")
    out = tmp_path / "x.pdf"
    code, output = _run("convert", str(CII_EN16931), "-o", str(out), "--pdf", str(visual))
    assert code == 2, output
    assert f"--pdf {visual} is not a usable PDF" in output
    assert "unreadable" not in output and CII_EN16931.name not in output
    assert not out.exists()
    with pytest.raises(VisualPDFError, match=r"the visual PDF to wrap \(pdf=, --pdf\)"):
        convert(CII_EN16931, to="facturx", pdf=visual.read_bytes())


def test_two_inputs_sharing_a_stem_both_keep_their_output(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(CII_EN16931, source / "x.xml")
    shutil.copy(FACTURX_PDF, source / "x.pdf")
    shutil.copy(CII_EN16931, source / "y.xml")
    out = tmp_path / "out"
    code, output = _run("convert", str(source), "-o", str(out), "-j", "1")
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["x.pdf.pdf", "x.xml.pdf", "y.pdf"]
    assert "converted 3 of 3" in output


def test_converting_a_folder_in_place_never_overwrites_another_input(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(CII_EN16931, source / "x.xml")
    shutil.copy(FACTURX_PDF, source / "x.pdf")
    before = (source / "x.pdf").read_bytes()
    code, output = _run("convert", str(source), "-o", str(source), "-j", "1")
    assert code == 0, output
    assert (source / "x.pdf").read_bytes() == before
    assert (source / "x.xml.pdf").is_file() and (source / "x.pdf.pdf").is_file()


def test_convert_extract_and_validate_all_create_missing_folders(tmp_path: Path) -> None:
    code, output = _run("convert", str(CII_EN16931), "-o", str(tmp_path / "a" / "b" / "x.pdf"))
    assert code == 0, output
    code, output = _run("extract", str(FACTURX_PDF), "-o", str(tmp_path / "c" / "d" / "x.xml"))
    assert code == 0, output
    code, output = _run("extract", str(FACTURX_PDF), "-o", f"{tmp_path}/e/f/")
    assert code == 0, output
    code, output = _run("validate", str(CII_EN16931), "--format", "json", "-o",
                        str(tmp_path / "g" / "h" / "report.json"))
    assert code == 0, output
    assert (tmp_path / "a" / "b" / "x.pdf").is_file()
    assert (tmp_path / "c" / "d" / "x.xml").is_file()
    assert (tmp_path / "e" / "f" / "factur-x.xml").is_file()
    assert (tmp_path / "g" / "h" / "report.json").is_file()


def test_convert_extract_and_validate_report_a_write_error_in_one_line_exit_2(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    runs = [
        ("convert", str(CII_EN16931), "-o", str(blocker / "x.pdf")),
        ("extract", str(FACTURX_PDF), "-o", str(blocker / "x.xml")),
        ("validate", str(CII_EN16931), "-o", str(blocker / "report.txt")),
    ]
    for args in runs:
        code, output = _run(*args)
        assert code == 2, (args[0], output)
        lines = [line for line in output.splitlines() if "cannot write" in line]
        assert len(lines) == 1, (args[0], output)
        assert "Traceback" not in output


def test_a_refusal_tells_source_defects_from_conversion_defects() -> None:
    with pytest.raises(ConversionRejected) as caught:
        convert(INVALID / "br-co-10-line-sum.xml", to="cii", profile="en16931",
                rules="xsd,en16931")
    # Passed through as it is: the only failing rule is the source's own.
    assert caught.value.source_defects == ("BR-CO-10",)
    assert caught.value.conversion_defects == ()
    assert "BR-CO-10 fails on the source too: a source defect" in caught.value.message


def test_a_rule_failing_only_on_the_output_is_a_conversion_defect() -> None:
    # The fixture's seller identifier has no scheme: CII's French rules accept it, UBL's
    # BR-FR-CO-10 does not, so the UBL output fails where the source did not.
    with pytest.raises(ConversionRejected) as caught:
        convert(CII_EN16931, to="ubl")
    assert "BR-FR-CO-10_BT-29-1" in caught.value.conversion_defects
    assert caught.value.source_defects == ()
    assert "fail on the output only: a conversion defect" in caught.value.message


def test_the_cli_summary_says_which_rules_the_source_already_broke(tmp_path: Path) -> None:
    code, output = _run("convert", str(INVALID / "br-co-10-line-sum.xml"), "-o",
                        str(tmp_path / "x.xml"), "--to", "ubl")
    assert code == 1, output
    assert "BR-CO-10 fails on the source too: a source defect" in output
    assert "on the output only: a conversion defect" in output
