"""`--max-size / --max-nodes`: input limits from the command line (issue 19).

The defaults stay the library's (100 MB, 1,000,000 markup items); the options raise or lower
them for one run, a bad value is a usage error, and an input over a limit is refused with one
line naming the option that raises it (validate, read, render: one shared definition).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from facturflow.cli import main
from facturflow.xmlsafe import DEFAULT_MAX_NODES

from .helpers import VALID_CII


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facturflow", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def many_items(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid invoice followed by a comment of DEFAULT_MAX_NODES '=' characters: over the
    markup-item limit (every '<' and '=' counts) while its tree stays tiny."""
    path = tmp_path_factory.mktemp("limits") / "many-items.xml"
    path.write_bytes(VALID_CII.read_bytes().rstrip() + b"\n<!--"
                     + b"=" * DEFAULT_MAX_NODES + b"-->\n")
    return path


def test_default_markup_limit_refuses_and_max_nodes_admits(many_items: Path) -> None:
    refused = run("validate", many_items)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (f"markup items (elements, attributes) exceeds --max-nodes {DEFAULT_MAX_NODES} "
            "(raise it with --max-nodes)") in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    admitted = run("validate", "--max-nodes", str(2 * DEFAULT_MAX_NODES), many_items)
    assert admitted.returncode == 0, admitted.stdout + admitted.stderr
    assert "VALID" in admitted.stdout


def test_max_size_lowers_and_raises_the_size_limit(tmp_path: Path) -> None:
    size = VALID_CII.stat().st_size
    refused = run("validate", "--max-size", "1KB", VALID_CII)
    assert refused.returncode == 2
    assert f"{size} bytes exceeds --max-size 1 KB (raise it with --max-size)" in refused.stdout
    runner = CliRunner()
    for value in (str(size), "1.5GB", "200MB", "200 mib"):
        result = runner.invoke(main, ["validate", "--jobs", "1", "--max-size", value,
                                      str(VALID_CII)])
        assert result.exit_code == 0, (value, result.output)
    result = runner.invoke(main, ["validate", "--jobs", "1", "--max-size", str(size - 1),
                                  str(VALID_CII)])
    assert result.exit_code == 2
    assert f"exceeds --max-size {size - 1} bytes (raise it with --max-size)" in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [("--max-size", "20x"), ("--max-size", "0"), ("--max-size", "-5MB"), ("--max-size", "MB"),
     ("--max-nodes", "0"), ("--max-nodes", "many")],
)
def test_bad_limit_values_are_usage_errors(option: str, value: str) -> None:
    result = CliRunner().invoke(main, ["validate", option, value, str(VALID_CII)])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_help_documents_the_limits_and_their_defaults() -> None:
    result = CliRunner().invoke(main, ["validate", "--help"])
    assert "--max-size SIZE" in result.output and "100MB" in result.output
    assert "--max-nodes N" in result.output and "1000000" in result.output


@pytest.mark.parametrize("command", ["read", "render"])
def test_read_and_render_take_the_same_limits(command: str, many_items: Path,
                                              tmp_path: Path) -> None:
    extra = ["--output", str(tmp_path / "view.html")] if command == "render" else []
    runner = CliRunner()
    size = VALID_CII.stat().st_size
    refused = runner.invoke(main, [command, *extra, "--max-size", "1KB", str(VALID_CII)])
    assert refused.exit_code == 2, refused.output
    assert f"{size} bytes exceeds --max-size 1 KB (raise it with --max-size)" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    refused = runner.invoke(main, [command, *extra, str(many_items)])
    assert refused.exit_code == 2
    assert f"exceeds --max-nodes {DEFAULT_MAX_NODES} (raise it with --max-nodes)" in refused.output
    admitted = runner.invoke(main, [command, *extra, "--max-nodes", str(2 * DEFAULT_MAX_NODES),
                                    str(many_items)])
    assert admitted.exit_code == 0, admitted.output
    help_text = runner.invoke(main, [command, "--help"]).output
    assert "--max-size SIZE" in help_text and "--max-nodes N" in help_text


def test_the_library_names_the_limit_not_an_option() -> None:
    import facturflow
    from facturflow.errors import InputTooLargeError
    from facturflow.xmlsafe import Limits

    size = VALID_CII.stat().st_size
    report = facturflow.validate(VALID_CII, limits=Limits(max_bytes=1024))
    assert not report.ok and "--max-size" not in str(report.error)
    assert f"{size} bytes exceeds the limit of 1024 bytes" in str(report.error)
    with pytest.raises(InputTooLargeError, match="raise it with --max-size"):
        facturflow.detect(VALID_CII, limits=Limits(max_bytes=1024,
                                                   options=(("max_bytes", "--max-size"),)))
