"""`convert --max-size / --max-nodes` and `convert(limits=...)` (issue 19): the input limits
bound both the source read and the output validated; the defaults stay the safe ones."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from convert_helpers import CII_EN16931, CII_EXTENDED_CTC_FR

from facturflow.cli import main
from facturflow.conversion import convert
from facturflow.convert_cli import _Options, run_on
from facturflow.errors import InputTooLargeError
from facturflow.exitcodes import USAGE
from facturflow.facturx import extract_xml
from facturflow.inputs import cli_limits
from facturflow.xmlsafe import DEFAULT_MAX_NODES, Limits

RAISED_NODES = str(2 * DEFAULT_MAX_NODES)


@pytest.fixture(scope="module")
def many_items(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid CII followed by a comment of DEFAULT_MAX_NODES '=' characters: over the default
    markup-item limit (every '<' and '=' counts) while its tree stays tiny. Converted to
    Factur-X it keeps its bytes, comment included: the output is over the limit too."""
    path = tmp_path_factory.mktemp("limits") / "many-items.xml"
    path.write_bytes(CII_EN16931.read_bytes().rstrip() + b"\n<!--"
                     + b"=" * DEFAULT_MAX_NODES + b"-->\n")
    return path


def _lines_naming(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_max_size_refuses_a_larger_input_and_a_raised_one_admits_it(tmp_path: Path) -> None:
    size = CII_EN16931.stat().st_size
    out = tmp_path / "out.xml"
    runner = CliRunner()
    refused = runner.invoke(main, ["convert", str(CII_EN16931), "-o", str(out), "--to", "cii",
                                   "--max-size", "1KB"])
    assert refused.exit_code == USAGE, refused.output  # an input that cannot be read
    named = _lines_naming(refused.output, "--max-size")
    assert named == [f"  {CII_EN16931}: unreadable: {size} bytes exceeds --max-size 1 KB "
                     "(raise it with --max-size)"]
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
    assert not out.exists()
    admitted = runner.invoke(main, ["convert", str(CII_EN16931), "-o", str(out), "--to", "cii",
                                    "--max-size", str(size)])
    assert admitted.exit_code == 0, admitted.output
    assert out.exists()


def test_max_nodes_bounds_the_source_and_the_output(many_items: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    runner = CliRunner()
    refused = runner.invoke(main, ["convert", str(many_items), "-o", str(out)])
    assert refused.exit_code == USAGE, refused.output
    assert len(_lines_naming(refused.output, f"exceeds --max-nodes {DEFAULT_MAX_NODES} "
                                             "(raise it with --max-nodes)")) == 1
    assert not out.exists()
    # The Factur-X keeps the CII's bytes: embedding and validating the output need the raised
    # limit as much as reading the source does.
    admitted = runner.invoke(main, ["convert", str(many_items), "-o", str(out),
                                    "--max-nodes", RAISED_NODES])
    assert admitted.exit_code == 0, admitted.output
    assert extract_xml(out.read_bytes()) == many_items.read_bytes()


def test_a_folder_on_a_process_pool_takes_the_limits(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for path in (CII_EN16931, CII_EXTENDED_CTC_FR):
        shutil.copy(path, source / path.name)
    out = tmp_path / "out"
    runner = CliRunner()
    refused = runner.invoke(main, ["convert", str(source), "-o", str(out), "--jobs", "2",
                                   "--max-size", "1KB"])
    assert refused.exit_code == USAGE, refused.output
    assert len(_lines_naming(refused.output, "exceeds --max-size 1 KB")) == 2
    assert not list(out.rglob("*.pdf"))
    # Raised to the largest input: the outputs (Factur-X PDFs, larger than their XML) are ours,
    # validated under the markup limits but not refused for their size.
    biggest = max(p.stat().st_size for p in source.iterdir())
    admitted = runner.invoke(main, ["convert", str(source), "-o", str(out), "--jobs", "2",
                                    "--max-size", str(biggest)])
    assert admitted.exit_code == 0, admitted.output
    assert len(list(out.rglob("*.pdf"))) == 2


def test_an_executor_batch_takes_the_limits(many_items: Path, tmp_path: Path) -> None:
    """The path of `convert --scheduler`: the options (limits included) go to the workers."""
    def jobs(limits: Limits) -> list[tuple[str, str, _Options]]:
        options = _Options(to="facturx", profile=None, pdf=None, lossy=False, lang="fr",
                           limits=limits)
        return [(str(many_items), str(tmp_path / "out.pdf"), options)]

    with ThreadPoolExecutor(2) as pool:
        (refused,) = run_on(pool, jobs(cli_limits(None, None)), ship_bytes=True)
        (admitted,) = run_on(pool, jobs(cli_limits(None, 2 * DEFAULT_MAX_NODES)),
                             ship_bytes=True)
    assert refused.status == "unreadable" and "--max-nodes" in refused.message
    assert admitted.status == "converted", admitted.message
    assert (tmp_path / "out.pdf").exists()


def test_the_library_takes_limits_for_the_source_and_the_output(many_items: Path) -> None:
    size = CII_EN16931.stat().st_size
    with pytest.raises(InputTooLargeError, match=f"{size} bytes exceeds the limit of 1024 bytes"):
        convert(CII_EN16931, to="cii", limits=Limits(max_bytes=1024))
    with pytest.raises(InputTooLargeError):
        convert(many_items, to="facturx")  # the safe default still refuses it
    result = convert(many_items, to="facturx", limits=Limits(max_nodes=2 * DEFAULT_MAX_NODES))
    assert result.report.ok and result.xml == many_items.read_bytes()
    assert convert(CII_EN16931, to="cii", limits=Limits(max_bytes=size)).report.ok
