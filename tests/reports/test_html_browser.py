"""The HTML report in a real headless browser: Debian's chromium, driven by playwright.

The report of a batch (the project fixtures, always; 200 corpus files, UBL, CII and PDF, valid
and invalid, when the corpus is there) is written by the command line, opened through file://,
and checked as a person would meet it: no console error, no network request at all, the summary
table (one row a file, verdict counts as the JSON report of the same run says), the severity
and rule filters (visible findings counted, against the JSON report), French and English labels,
everything shown without JavaScript, and a screenshot compared structurally (size, not blank,
colours, the header band) with a snapshot of the page's structure, not pixel by pixel.

Chromium is installed with apt-get when it is missing and this runs as root with apt (the test
set-up of a CI container); elsewhere the tests are skipped, saying why. `playwright install`
(a browser download) is never used.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import corpus_path

sync_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
HEADER_BLUE = (0x1F, 0x3A, 0x5F)  # header.top in the report's CSS


def _find_chromium() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _install_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (root with apt only)."""
    found = _find_chromium()
    if found:
        return found
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (needs root and "
                    "apt-get): install Debian's chromium package to run the browser tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=1800,
                            check=False)
    if result.returncode != 0:  # a container's package lists may be empty or stale
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=900,
                       check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True,
                                timeout=1800, check=False)
    found = _find_chromium()
    if found is None:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"chromium could not be installed with apt-get: {last}")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _install_chromium()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Opened:
    """A report open in a page, with what the page said and asked for."""

    def __init__(self, browser: Any, path: Path, *, javascript: bool = True) -> None:
        self.url = path.resolve().as_uri()
        self.context = browser.new_context(viewport=VIEWPORT, java_script_enabled=javascript)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.goto(self.url, wait_until="load")

    def check_clean(self) -> None:
        """No console error, no request but the page itself, nothing failed."""
        assert self.errors == []
        assert self.requests == [self.url]
        assert self.failed == []

    def visible(self, selector: str) -> int:
        return int(self.page.locator(f"{selector}:visible").count())

    def shown_count(self) -> int:
        return int(self.page.locator("#shown-count").inner_text())

    def close(self) -> None:
        self.context.close()


def _write_reports(files: list[str], folder: Path) -> dict[str, Path]:
    """Through the command line: the HTML report in English with the JSON report the checks
    compare against (one run), then the French HTML report (a second run)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = {"en": folder / "report.html", "json": folder / "report.json",
           "fr": folder / "rapport.html"}
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", "validate", "-q", "--report", f"html:{out['en']}",
         "--report", f"json:{out['json']}", *files],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert result.returncode in (0, 1, 2), result.stderr
    assert out["en"].is_file() and out["json"].is_file(), result.stderr
    french = subprocess.run(
        [sys.executable, "-m", "facturflow", "validate", "-q", "--lang", "fr",
         "--report", f"html:{out['fr']}", *files],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert out["fr"].is_file(), french.stderr
    return out


def _expected(json_path: Path) -> dict[str, Any]:
    data = json.loads(json_path.read_text(encoding="utf-8"))
    readable = [f for f in data["files"] if "error" not in f]
    findings = [finding for f in readable for finding in f["findings"]]
    by_rule = Counter(f["rule"] for f in findings)
    files_by_rule = Counter(rule for f in readable for rule in {x["rule"] for x in f["findings"]})
    return {"summary": data["summary"], "files": len(data["files"]),
            "findings": len(findings),
            "not_information": sum(1 for f in findings if f["severity"] != "information"),
            "by_rule": by_rule, "files_by_rule": files_by_rule}


def _structure(page: Any) -> dict[str, int]:
    """How many of each part the page has: the snapshot compared instead of pixels."""
    counts: dict[str, int] = page.evaluate("""() => {
      const n = s => document.querySelectorAll(s).length;
      return {summary_rows: n('#files tbody tr'), file_blocks: n('details.file'),
              invoices: n('details.file .invoice'), no_key_data: n('.no-data'),
              unreadable: n('details.file[data-verdict=unreadable]'),
              general_blocks: n('details.file .general'),
              pinned_blocks: n('.pins'), pinned_line_rows: n('tr.pins'),
              flagged_lines: n('tr.flagged'), findings: n('.finding'),
              line_tables: n('.invoice table:not(.totals) thead'), totals: n('table.totals'),
              parties: n('.invoice .parties'), severity_boxes: n('input[data-severity]'),
              rule_options: n('#rule-filter option'), top_rules: n('#top-rules tr'),
              scripts: n('script'), styles: n('style'), external: n('[src],link')};
    }""")
    return counts


def _check_screenshot(path: Path) -> None:
    """The screenshot is a report: the viewport's size, not blank, several colours, text on a
    white page, and the dark header band across the top."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    assert rgb.size == (VIEWPORT["width"], VIEWPORT["height"])
    small = rgb.resize((320, 225))
    raw = small.tobytes()
    pixels = [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]
    colours = {(r // 16, g // 16, b // 16) for r, g, b in pixels}
    assert len(colours) >= 12, f"only {len(colours)} colours: a blank or broken page"
    background = sum(1 for p in pixels if min(p) >= 245) / len(pixels)
    assert 0.3 <= background <= 0.97, f"{background:.0%} white"

    def blue(p: tuple[int, int, int]) -> bool:
        return all(abs(a - b) <= 24 for a, b in zip(p, HEADER_BLUE, strict=True))

    band = [rgb.getpixel((x, 12)) for x in range(120, 1160, 8)]
    assert sum(1 for p in band if blue(p)) / len(band) > 0.9, "no header band at the top"
    below = [rgb.getpixel((x, 400)) for x in range(120, 1160, 8)]
    assert sum(1 for p in below if blue(p)) / len(below) < 0.2


def _check_filters(opened: Opened, expected: dict[str, Any]) -> None:
    page = opened.page
    page.click("#expand")
    total = page.locator(".finding").count()
    assert opened.visible(".finding") == total
    assert opened.shown_count() == expected["findings"]
    # Severity: without information, only fatal and warning findings are visible.
    page.uncheck("input[data-severity='information']")
    assert opened.visible(".finding") == page.locator(
        ".finding:not([data-severity='information'])").count()
    assert opened.visible(".finding[data-severity='information']") == 0
    assert opened.shown_count() == expected["not_information"]
    page.check("input[data-severity='information']")
    assert opened.visible(".finding") == total
    # Rule: the most frequent rule that is not a rule-set note; only its findings and only
    # the files that have it are shown.
    rule = next(r for r, _ in expected["by_rule"].most_common() if not r.startswith("RULES-"))
    page.select_option("#rule-filter", rule)
    shown = page.locator(".finding:visible")
    assert shown.count() == page.locator(f".finding[data-rule='{rule}']").count() > 0
    assert set(shown.evaluate_all("els => els.map(e => e.dataset.rule)")) == {rule}
    assert opened.shown_count() == expected["by_rule"][rule]
    assert opened.visible("details.file") == expected["files_by_rule"][rule]
    page.select_option("#rule-filter", "")
    assert opened.visible(".finding") == total
    assert opened.visible("details.file") == expected["files"]


def _check_page(browser: Any, out: dict[str, Path], tmp_path: Path, files: int
                ) -> dict[str, int]:
    expected = _expected(out["json"])
    assert expected["files"] == files
    english = Opened(browser, out["en"])
    try:
        english.check_clean()
        page = english.page
        assert page.locator("h1").inner_text() == "facturflow validation report"
        rows = page.locator("#files tbody tr")
        assert rows.count() == files
        verdicts = Counter(rows.evaluate_all("rs => rs.map(r => r.dataset.verdict)"))
        summary = expected["summary"]
        assert verdicts == Counter({k: summary[k] for k in ("valid", "invalid", "unreadable")
                                    if summary[k]})
        for verdict in ("valid", "invalid", "unreadable"):
            assert page.locator(f"#totals [data-count='{verdict}']").inner_text().startswith(
                f"{summary[verdict]} ")
        assert page.locator("#filters").is_visible() and not page.locator("#nojs").is_visible()
        page.screenshot(path=str(tmp_path / "report.png"))
        _check_screenshot(tmp_path / "report.png")
        page.screenshot(path=str(tmp_path / "report-full.png"), full_page=True)
        structure = _structure(page)
        _check_filters(english, expected)
        # A summary row's link opens its file's block.
        page.click("#collapse")
        last = files - 1
        page.click(f"#files tbody tr:nth-child({files}) a")
        assert page.locator(f"#file-{last}").get_attribute("open") is not None
        assert page.url.endswith(f"#file-{last}")
        english.check_clean()
    finally:
        english.close()
    french = Opened(browser, out["fr"])
    try:
        french.check_clean()
        page = french.page
        assert page.locator("h1").inner_text() == "Rapport de validation facturflow"
        assert page.locator("#files thead th").first.inner_text() == "Fichier"
        assert page.locator("label:has(input[data-severity='fatal'])").inner_text().strip(
            ).startswith("bloquant")
        page.click("#expand")
        heads = page.locator(".invoice .parties h4")
        if heads.count():
            assert heads.first.inner_text() == "Vendeur"
            assert "Seller" not in page.locator(".invoice").first.inner_text()
        assert _structure(page) == structure  # the same page, in other words
    finally:
        french.close()
    # Without JavaScript: no filter controls, and nothing hidden.
    static = Opened(browser, out["en"], javascript=False)
    try:
        page = static.page
        assert not page.locator("#filters").is_visible()
        assert page.locator("#nojs").is_visible()
        assert page.locator(".finding[hidden], details.file[hidden]").count() == 0
        blocks = page.locator("details.file")
        for index in range(min(blocks.count(), 12)):  # a large batch starts collapsed
            block = blocks.nth(index)
            if block.get_attribute("open") is None:
                block.locator("summary").click()
            assert block.locator(".finding:visible").count() == block.locator(
                ".finding").count()
        if blocks.count() <= 12:
            assert static.visible(".finding") == page.locator(".finding").count()
        assert static.requests == [static.url] and static.failed == []
    finally:
        static.close()
    # Headings of the English page: each block is an invoice's.
    assert structure["summary_rows"] == structure["file_blocks"] == files
    assert structure["scripts"] == 1 and structure["styles"] == 1 and structure["external"] == 0
    return structure


def _check_golden(name: str, structure: dict[str, int]) -> None:
    path = GOLDEN / name
    text = json.dumps(structure, indent=2, sort_keys=True) + "\n"
    if os.environ.get("FACTURFLOW_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} missing: run with FACTURFLOW_UPDATE_GOLDEN=1 and review it"
    assert json.loads(path.read_text(encoding="utf-8")) == structure


def test_fixture_report_in_chromium(browser: Any, tmp_path: Path) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "fixtures").glob("*/*")
                   if p.suffix in (".xml", ".pdf"))
    out = _write_reports(files, tmp_path)
    structure = _check_page(browser, out, tmp_path, len(files))
    assert structure["invoices"] >= 10 and structure["pinned_line_rows"] >= 0
    _check_golden("html-structure-fixtures.json", structure)


def test_hostile_report_in_chromium(browser: Any, tmp_path: Path) -> None:
    from tests.reports.test_html import hostile_invoice

    path = hostile_invoice(tmp_path)
    out = tmp_path / "hostile.html"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-m", "facturflow", "validate", "-q", "--report",
                    f"html:{out}", str(path)], cwd=REPO, env=env, capture_output=True,
                   timeout=600, check=False)
    opened = Opened(browser, out)
    try:
        opened.check_clean()  # nothing ran: no dialog, no error, no request
        page = opened.page
        assert page.locator("script").count() == 1
        name = page.locator(".parties p.name").first
        assert name.inner_text().startswith('<script>alert("x")</script>\'"&amp; ')
        assert "W" * 3000 in name.inner_text()
        assert "</td></tr><b onclick=x>" in page.locator(".invoice table").first.inner_text()
        # The 3,000-character name wraps: the page is no wider than the window.
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= VIEWPORT["width"]
    finally:
        opened.close()


def _corpus_sample(root: Path, count: int = 200) -> list[str]:
    """A fixed mix of the corpus: each format in proportion, its known-invalid files first."""
    with (root / "MANIFEST.tsv").open(encoding="utf-8", newline="") as stream:
        rows = sorted(csv.DictReader(stream, delimiter="\t"), key=lambda r: r["path"])
    quota = {"cii": 55, "ubl-invoice": 45, "ubl-creditnote": 10, "facturx-pdf": 65,
             "zugferd1-pdf": 5, "other": 20}
    assert sum(quota.values()) == count
    chosen: list[str] = []
    for fmt, wanted in quota.items():
        rows_of = [r for r in rows if r["format"] == fmt]
        invalid = [r for r in rows_of if r["expected"] == "invalid"][: wanted // 2]
        rest = [r for r in rows_of if r not in invalid]
        chosen += [str(root / r["path"]) for r in (invalid + rest)[:wanted]]
    assert len(chosen) == count
    return chosen


def test_corpus_report_of_200_files_in_chromium(browser: Any, tmp_path: Path) -> None:
    root = corpus_path()
    if not (root / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {root} (set FACTURFLOW_CORPUS to its folder)")
    files = _corpus_sample(root)
    out = _write_reports(files, tmp_path)
    structure = _check_page(browser, out, tmp_path, 200)
    expected = _expected(out["json"])
    summary = expected["summary"]
    assert summary["valid"] and summary["invalid"]  # a real mix
    kinds = Counter(Path(f).suffix for f in files)
    assert kinds[".pdf"] >= 50 and kinds[".xml"] >= 100
    # Every readable file shows its key data or says why not; findings are pinned in them.
    assert structure["invoices"] + structure["no_key_data"] + structure["unreadable"] == 200
    assert structure["invoices"] >= 120
    assert structure["pinned_line_rows"] > 0 and structure["flagged_lines"] > 0
    # A large batch starts collapsed.
    assert structure["file_blocks"] == 200
