"""The README's examples run: every Python block, and every `facturflow` command it names exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SKIP = "<!-- readme-test: skip"
BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\s*)?```python\n(.*?)```", re.S)
BLOCKS = [(m.group(2), bool(m.group(1))) for m in BLOCK.finditer(README)]


@pytest.mark.parametrize(("code", "skipped"), BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_python_example_runs(code: str, skipped: bool, tmp_path: Path) -> None:
    if skipped:
        pytest.skip("marked in the README as needing the user's own files")
    # Run where the examples expect to be: beside the fixtures, writing into a scratch folder.
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_cli_command_in_the_readme_exists() -> None:
    from facturflow.cli import main

    commands = set(main.list_commands(None))  # type: ignore[arg-type]
    named = set(re.findall(r"^\$ facturflow ([a-z-]+)", README, re.M))
    assert named, "the README shows no facturflow command"
    assert named <= commands, named - commands


def test_readme_gives_the_two_quick_start_commands() -> None:
    assert "make demo" in README and "make test" in README
