"""The README's and the documentation pages' examples run: every Python block, and every
`facturflow` command they name exists. A broken copy shows the test would catch a failing one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\s*)?```python\n(.*?)```", re.S)


def python_blocks(text: str) -> list[tuple[str, bool]]:
    """The Python blocks of a page, each with whether the page marks it as not runnable here."""
    return [(m.group(2), bool(m.group(1))) for m in BLOCK.finditer(text)]


def run_block(code: str, where: Path) -> subprocess.CompletedProcess[str]:
    # Run where the examples expect to be: beside the fixtures, writing into a scratch folder.
    (where / "fixtures").symlink_to(REPO / "fixtures")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=where, capture_output=True, text=True, timeout=600
    )


BLOCKS = [
    (page, index, code, skipped)
    for page in PAGES
    for index, (code, skipped) in enumerate(python_blocks(page.read_text(encoding="utf-8")))
]


@pytest.mark.parametrize(
    ("page", "index", "code", "skipped"),
    BLOCKS,
    ids=[f"{page.relative_to(REPO)}:{index}" for page, index, _, _ in BLOCKS],
)
def test_python_example_runs(
    page: Path, index: int, code: str, skipped: bool, tmp_path: Path
) -> None:
    if skipped:
        pytest.skip("marked in the page as needing the user's own files")
    result = run_block(code, tmp_path)
    assert result.returncode == 0, f"{page.name} block {index}:\n{result.stderr[-3000:]}"


def test_a_failing_example_fails_the_test(tmp_path: Path) -> None:
    # A deliberately broken copy of a page: its first example names an attribute that is not.
    page = (REPO / "docs" / "detect.md").read_text(encoding="utf-8")
    broken = page.replace("doc.container", "doc.no_such_attribute", 1)
    assert broken != page
    code, skipped = python_blocks(broken)[0]
    assert not skipped
    result = run_block(code, tmp_path)
    assert result.returncode != 0 and "no_such_attribute" in result.stderr


def test_every_cli_command_in_the_pages_exists() -> None:
    from facturflow.cli import main

    commands = set(main.list_commands(None))  # type: ignore[arg-type]
    named = {
        name
        for page in PAGES
        for name in re.findall(r"^\$ facturflow ([a-z-]+)", page.read_text(encoding="utf-8"), re.M)
    }
    assert named, "the pages show no facturflow command"
    assert named <= commands, named - commands


def test_readme_gives_the_two_quick_start_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme


def test_the_readme_is_a_front_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    # every page of the site is linked from it
    for page in sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "index.md"):
        assert f"docs/{page.name}" in readme, f"the README does not link docs/{page.name}"
