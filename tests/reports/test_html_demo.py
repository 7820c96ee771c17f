"""`make demo` writes an HTML report and names it (issue 14's acceptance), as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import html as lxml_html

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_writes_and_names_an_html_report() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QONTO_")}
    env["PYTHONPATH"] = str(REPO / "src")
    result = subprocess.run([sys.executable, "-m", "facturflow.demo"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    named = re.search(r"^HTML report \(open it in a browser\): (\S+)$", result.stdout, re.M)
    assert named, result.stdout
    path = Path(named.group(1))
    assert path.is_file() and path == REPO / "out" / "demo" / "report.html"
    doc = lxml_html.document_fromstring(path.read_text(encoding="utf-8"))
    assert len(doc.xpath("//table[@id='files']//tr[@data-verdict]")) == 3
    # The invalid invoice's key data, its finding pinned under its totals.
    (finding,) = doc.xpath("//div[@data-rule='BR-CO-10']")
    assert finding.getparent().getprevious().get("class") == "totals"
