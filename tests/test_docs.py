"""The documentation site builds with no warning, and fails on what a reader would trip over.

`make docs` runs the same build. Snippets of the pages run in tests/test_readme.py, which reads the
README and every page of docs/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

pytest.importorskip("sphinx", reason="the docs extra (sphinx, myst-parser, furo) is not installed")


def _build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # -W: any warning (a broken link, anchor, include or autodoc target) fails; -E: no stale state.
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-E", "-q", "-b", "html", str(source),
         str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_site_builds_without_a_warning(tmp_path: Path) -> None:
    result = _build(DOCS, tmp_path / "html")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "html" / "index.html").is_file()
    assert (tmp_path / "html" / "reference" / "api.html").is_file()


def test_every_page_is_reachable_from_the_index(tmp_path: Path) -> None:
    result = _build(DOCS, tmp_path / "html")
    assert result.returncode == 0, result.stderr[-4000:]
    pages = {p.relative_to(DOCS).with_suffix("") for p in DOCS.rglob("*.md")}
    html = tmp_path / "html"
    built = {p.relative_to(html).with_suffix("") for p in html.rglob("*.html")}
    assert pages <= built, pages - built


@pytest.mark.parametrize(
    ("page", "broken", "expected"),
    [
        ("index.md", "\nSee [the missing page](no-such-page.md).\n", "no-such-page"),
        ("index.md", "\nSee [a missing heading](validate.md#no-such-heading).\n",
         "no-such-heading"),
        ("index.md", "\n```{eval-rst}\n.. autofunction:: facturflow.no_such_function\n```\n",
         "no_such_function"),
    ],
    ids=["missing-page", "missing-anchor", "missing-api"],
)
def test_a_broken_link_or_reference_fails_the_build(
    page: str, broken: str, expected: str, tmp_path: Path
) -> None:
    copy = tmp_path / "docs"
    shutil.copytree(DOCS, copy, ignore=shutil.ignore_patterns("_build"))
    with (copy / page).open("a", encoding="utf-8") as out:
        out.write(broken)
    result = _build(copy, tmp_path / "html")
    assert result.returncode != 0
    assert expected in result.stderr
