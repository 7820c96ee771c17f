"""The HTML report's cost beside the validation of the same batch (issue 14: 1,000 files under
2 s beyond the validation itself).

The first N corpus files of MANIFEST.tsv (all kinds: CII, UBL, Factur-X and ZUGFeRD PDFs, valid,
invalid, unreadable) are validated with `validate_many` on `jobs` workers (wall and CPU of this
process and its workers), then the HTML report of those reports is written `rounds` times with
the default worker processes and with none (`workers=1`), each timed (wall and CPU) from a cold
start (the run's cache of read invoices, facturflow.reports.values, emptied before each round).
The report reads every invoice through the EN 16931 model for its key data (a PDF from its
named attachment alone): that, more than the markup, is its cost. Then, as `validate --report
html:... --report text` does, the text report after the HTML one (it reads nothing again).
Printed: seconds, the report/validation ratio, the page's size.

    python -m benchmarks.html_bench [--files 1000] [--jobs 2] [--rounds 3] [--json out.json]

Benchmarks measure, they never assert.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .run import _cpu_of_this_and_children


def corpus_files(count: int) -> list[str]:
    root = Path(os.environ.get("FACTURFLOW_CORPUS")
                or Path(__file__).resolve().parents[1].parent / "shared" / "corpus")
    manifest = root / "MANIFEST.tsv"
    if not manifest.is_file():
        sys.exit(f"corpus not found at {root} (set FACTURFLOW_CORPUS to its folder)")
    with manifest.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    files = [str(root / row["path"]) for row in rows]
    # Fewer corpus files than asked: the list is repeated (each file read again, as it would be).
    return [files[i % len(files)] for i in range(count)]


def _timed(fn: Any) -> tuple[Any, float, float]:
    cpu0, wall0 = _cpu_of_this_and_children(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - wall0, _cpu_of_this_and_children() - cpu0


def run(files: int, jobs: int, rounds: int) -> dict[str, Any]:
    from facturflow.reports import html, text, values
    from facturflow.validation import validate_many

    paths = corpus_files(files)
    reports, v_wall, v_cpu = _timed(lambda: list(validate_many(paths, jobs=jobs)))
    figures: dict[str, Any] = {
        "files": files, "jobs": jobs, "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "validation": {"wall": v_wall, "cpu": v_cpu},
        "verdicts": {v: sum(1 for r in reports if (r.error is not None) == (v == "unreadable")
                            and (v == "unreadable" or r.ok == (v == "valid")))
                     for v in ("valid", "invalid", "unreadable")},
    }
    for name, workers in (("report", None), ("report_one_process", 1)):
        walls, cpus = [], []
        size = 0
        for _ in range(rounds):
            values.clear()  # a cold run: every invoice read
            page, wall, cpu = _timed(lambda w=workers: html.render(reports, workers=w))
            walls.append(wall)
            cpus.append(cpu)
            size = len(page.encode("utf-8"))
        figures[name] = {"wall": statistics.median(walls), "cpu": statistics.median(cpus),
                         "walls": walls, "bytes": size}
    # The text report of the same run, after the HTML one: its values are already read.
    out, wall, cpu = _timed(lambda: text.render(reports))
    figures["text_after_html"] = {"wall": wall, "cpu": cpu, "walls": [wall],
                                  "bytes": len(out.encode("utf-8"))}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.html_bench")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = run(args.files, args.jobs, args.rounds)
    validation = figures["validation"]
    print(f"{figures['files']} files ({figures['verdicts']}), {figures['jobs']} validation "
          f"workers, {figures['cpus']} CPUs, load average {figures['load_average']:.2f}")
    print(f"validation             {validation['wall']:7.2f} s wall {validation['cpu']:7.2f} s CPU")
    for name in ("report", "report_one_process", "text_after_html"):
        entry = figures[name]
        print(f"{name:22} {entry['wall']:7.2f} s wall {entry['cpu']:7.2f} s CPU  "
              f"ratio to validation: wall {entry['wall'] / validation['wall']:.2f}, "
              f"CPU {entry['cpu'] / validation['cpu']:.2f}  "
              f"({entry['bytes'] / 1e6:.1f} MB; rounds "
              f"{', '.join(f'{w:.2f}' for w in entry['walls'])})")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
