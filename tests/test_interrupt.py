"""Ctrl-C anywhere in any command exits 130 ("interrupted"), never click's "Aborted!" with exit 1,
which scripts would read as "invalid"."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from facturflow import exitcodes
from facturflow.cli import main


@pytest.fixture
def command() -> Iterator[click.Group]:
    names = ("_interrupted", "_prompt_interrupted", "_prompt_eof")

    @main.command("_interrupted")
    def interrupted() -> None:
        raise KeyboardInterrupt

    @main.command("_prompt_interrupted")
    def prompt_interrupted() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.Abort() from None  # what click.confirm does on Ctrl-C

    @main.command("_prompt_eof")
    def prompt_eof() -> None:
        click.confirm("really?", abort=False)

    yield main
    for name in names:
        main.commands.pop(name, None)


@pytest.mark.parametrize("name", ["_interrupted", "_prompt_interrupted"])
def test_ctrl_c_in_a_command_exits_130_with_one_line(command: click.Group, name: str) -> None:
    result = CliRunner().invoke(command, [name])
    assert result.exit_code == exitcodes.INTERRUPTED, result.output
    assert result.stderr.strip() == "error: interrupted (Ctrl-C)"
    assert "Aborted" not in result.output and "Traceback" not in result.output


def test_end_of_input_at_a_prompt_is_not_an_interruption(command: click.Group) -> None:
    result = CliRunner().invoke(command, ["_prompt_eof"], input="")
    assert result.exit_code == 1 and "Aborted" in result.output
