"""The pre-commit hook manifest is valid for pre-commit and runs what the README says."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pre_commit.clientlib import load_manifest

REPO = Path(__file__).resolve().parents[2]


def _hook() -> dict[str, object]:
    (hook,) = load_manifest(str(REPO / ".pre-commit-hooks.yaml"))
    return dict(hook)


def test_manifest_passes_pre_commits_own_schema() -> None:
    hook = _hook()
    assert hook["id"] == "facturflow-validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    assert hook["entry"] == "facturflow validate"


def test_entry_is_the_installed_console_script() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    command = str(_hook()["entry"]).split()[0]
    assert scripts[command] == "facturflow.cli:main"


def test_files_pattern_selects_xml_and_pdf_only() -> None:
    pattern = re.compile(str(_hook()["files"]))
    for name in ("invoices/f1.xml", "a/b/factur-x.pdf", "x.pdf"):
        assert pattern.search(name), name
    for name in ("invoice.xml.bak", "notes.txt", "report.pdfx", "xml", "README.md"):
        assert not pattern.search(name), name


def test_readme_shows_the_hook_id() -> None:
    section = (REPO / "docs" / "ci.md").read_text("utf-8")
    assert "id: facturflow-validate" in section
