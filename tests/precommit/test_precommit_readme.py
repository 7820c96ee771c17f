"""The README's .pre-commit-config.yaml works as written: pre-commit runs it in a fresh git
repository (offline: `repo: local` uses the facturflow installed in the environment)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_config() -> str:
    section = (REPO / "docs" / "ci.md").read_text("utf-8").split("## pre-commit", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "no yaml block in the pre-commit section of docs/ci.md"
    return match.group(1)


def test_readme_pre_commit_config_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "pre-commit").exists():
        pytest.skip(f"pre-commit is not installed beside {sys.executable}")
    work = tmp_path / "project"
    (work / "invoices").mkdir(parents=True)
    (work / "docs").mkdir()
    (work / ".pre-commit-config.yaml").write_text(readme_config(), encoding="utf-8")
    shutil.copy(REPO / "fixtures" / "valid" / "fr-invoice-en16931.xml", work / "invoices")
    (work / "docs" / "pom.xml").write_text("<project/>", encoding="utf-8")  # not selected
    env = {
        **os.environ,
        # `facturflow` and `pre-commit` from this environment; this checkout's sources.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "src"),
        "PRE_COMMIT_HOME": str(tmp_path / "cache"),
        "GIT_CONFIG_GLOBAL": os.devnull,
        "NO_COLOR": "1",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=work, env=env, check=True, capture_output=True)

    def hook() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "pre-commit"), "run", "--all-files"],
            cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False,
        )

    git("init", "-q")
    git("add", "-A")
    passed = hook()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "facturflow validate" in passed.stdout and "Passed" in passed.stdout
    shutil.copy(REPO / "fixtures" / "invalid" / "br-co-10-line-sum.xml", work / "invoices")
    git("add", "-A")
    failed = hook()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    # -q: the invalid invoice on one line, and nothing about the valid one.
    assert "invoices/br-co-10-line-sum.xml: INVALID" in failed.stdout
    assert "BR-CO-10" in failed.stdout
    assert "fr-invoice-en16931.xml" not in failed.stdout
