"""Every command teaches itself: a help text for each option, the exit codes and examples in
each command's --help (walked by click introspection, so a new command is checked too)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from facturflow.cli import main
from facturflow.clitypes import FiniteFloatRange

REPO = Path(__file__).resolve().parents[1]


def commands() -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and subcommand, with its path below `facturflow`."""

    def walk(
        command: click.Command, path: tuple[str, ...], ctx: click.Context
    ) -> Iterator[tuple[tuple[str, ...], click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                yield from walk(sub, (*path, name), click.Context(sub, info_name=name, parent=ctx))

    yield from walk(main, (), click.Context(main, info_name="facturflow"))


ALL = list(commands())
IDS = [" ".join(path) or "facturflow" for path, _ in ALL]


def test_the_walk_finds_every_command() -> None:
    names = {path for path, _ in ALL}
    for expected in [(), ("validate",), ("send",), ("inbox", "sync"), ("outbox", "retry"),
                     ("register", "status"), ("rules", "diff"), ("webhook", "serve")]:
        assert expected in names


@pytest.mark.parametrize(("path", "command"), ALL, ids=IDS)
def test_every_option_has_help_text(path: tuple[str, ...], command: click.Command) -> None:
    missing = [
        param.opts[0]
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
    ]
    assert not missing, f"facturflow {' '.join(path)}: options without help: {missing}"


@pytest.mark.parametrize(("path", "command"), ALL, ids=IDS)
def test_every_help_says_what_it_does_its_exit_codes_and_examples(
    path: tuple[str, ...], command: click.Command
) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    assert (command.help or "").strip(), "no description"
    assert "Exit codes" in text, f"facturflow {' '.join(path)} --help lists no exit codes"
    examples = text.split("Examples:", 1)
    assert len(examples) == 2, f"facturflow {' '.join(path)} --help has no examples"
    lines = [line.strip() for line in examples[1].splitlines() if line.strip()]
    assert lines and all(line.startswith("facturflow") or "facturflow" in line for line in lines)
    # Each example names this command (or, for the main group, a real one).
    assert all(" ".join(["facturflow", *path]) in line for line in lines)


def test_examples_use_options_that_exist() -> None:
    """Every --option in an example is an option of the command it runs."""
    for path, _ in ALL:
        result = CliRunner().invoke(main, [*path, "--help"], terminal_width=200)
        for line in result.output.split("Examples:", 1)[1].splitlines():
            words = line.split()
            if "facturflow" not in words:
                continue
            start = words.index("facturflow") + 1
            target: click.Command = main
            index = start
            while isinstance(target, click.Group) and index < len(words):
                sub = target.get_command(click.Context(target), words[index])
                if sub is None:
                    break
                target, index = sub, index + 1
            known = {opt for p in target.params for opt in [*p.opts, *p.secondary_opts]}
            for word in words[index:]:
                if word.startswith("--"):
                    assert word.split("=")[0] in known, (path, line, word)


def test_send_wait_timeout_is_the_new_name_and_timeout_still_works() -> None:
    send = dict(ALL)[("send",)]
    option = next(p for p in send.params if p.name == "wait_timeout")
    assert option.opts[0] == "--wait-timeout" and "--timeout" in option.opts
    help_text = CliRunner().invoke(main, ["send", "--help"], terminal_width=100).output
    assert "--wait-timeout" in help_text
    assert "--timeout " not in help_text.replace("validate --timeout", "")
    for flag in ("--wait-timeout", "--timeout"):  # both parse, to the same parameter
        ctx = send.make_context("send", ["x.pdf", flag, "12"])
        assert ctx.params["wait_timeout"] == 12.0


def test_main_help_lists_exit_codes_through_the_real_entry_point() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-m", "facturflow", "--help"], capture_output=True,
                            text=True, timeout=120, check=False, env=env)
    assert result.returncode == 0
    assert "Exit codes: 0" in result.stdout and "Examples:" in result.stdout


# --- numbers: every float option is a FiniteFloatRange, refusing what it cannot mean -----------

FLOAT_OPTIONS = [
    (path, param)
    for path, command in ALL
    for param in command.params
    if isinstance(param, click.Option)
    and isinstance(param.type, click.types.FloatParamType | click.FloatRange)
]


def test_every_float_option_is_a_finite_range() -> None:
    found = {(" ".join(path), param.opts[0]) for path, param in FLOAT_OPTIONS}
    assert {("validate", "--timeout"), ("send", "--wait-timeout"), ("doctor", "--max-skew"),
            ("webhook serve", "--tolerance"), ("sandbox", "--fault-rate")} <= found
    plain = [f"facturflow {' '.join(path)} {param.opts[0]}" for path, param in FLOAT_OPTIONS
             if not isinstance(param.type, FiniteFloatRange)]
    # click's FloatRange takes nan (every comparison false) and inf (when unbounded above).
    assert not plain, f"use clitypes.FiniteFloatRange for {plain}"


def _refused(param: click.Option) -> list[str]:
    """What the option must refuse: nan, ±inf, below its lowest value (-1 where negative
    means nothing), above its highest."""
    kind = param.type
    assert isinstance(kind, click.FloatRange)
    values = ["nan", "NaN", "inf", "-inf", "1e999"]
    if kind.min is not None:
        values.append(f"{kind.min - 1:g}")
        if kind.min >= 0:
            values.append("-1")
    if kind.max is not None:
        values.append(f"{kind.max * 10 + 1:g}")
    return values


@pytest.mark.parametrize(("path", "param"), FLOAT_OPTIONS,
                         ids=[f"{' '.join(p)} {o.opts[0]}" for p, o in FLOAT_OPTIONS])
def test_every_float_option_refuses_non_finite_and_out_of_range_values(
    path: tuple[str, ...], param: click.Option, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "state"))
    for value in _refused(param):
        result = CliRunner().invoke(main, [*path, param.opts[0], value])
        shown = f"facturflow {' '.join(path)} {param.opts[0]} {value}"
        assert result.exit_code == 2, f"{shown}: {result.exit_code} {result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), shown
        assert "Invalid value for" in result.output and param.opts[0] in result.output, shown
        assert result.output.count("Error:") == 1 and "Traceback" not in result.output, shown
    assert not (tmp_path / "state").exists()  # refused before anything started
