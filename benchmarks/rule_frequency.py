"""Which rules fail most often on real invoices: `python -m benchmarks.rule_frequency`.

Validates every file of the shared corpus's MANIFEST.tsv with the default rules and ranks the
rule ids of the fatal and warning findings by the number of files they fail in (then by number
of findings, then by id), as the batch table of the text report does. The rules that decide
nothing are left out: the `selection` notes (which rule sets were chosen) and the information
findings. The top 40 is the list tests/reports/test_hints.py keeps, so that every one of them
has a fix hint in facturflow/reports/data/hints.json; re-run this after a corpus or rule-set
update and refresh that list (`--top 40 --ids`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

from .run import corpus_root


def manifest_paths(corpus: Path) -> list[Path]:
    """Every file the corpus manifest lists, in manifest order (missing ones left out)."""
    with (corpus / "MANIFEST.tsv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    return [corpus / row["path"] for row in rows if (corpus / row["path"]).is_file()]


def frequencies(paths: list[Path], jobs: int | None = None) -> list[tuple[str, int, int]]:
    """(rule id, files, findings) of the fatal and warning findings, most files first."""
    from facturflow.validation import validate_many

    files: Counter[str] = Counter()
    findings: Counter[str] = Counter()
    for report in validate_many([str(p) for p in paths], jobs=jobs, timeout=300):
        if report.error is not None:
            continue  # an unreadable input's findings restate its error
        judged = [
            f
            for f in report.findings
            if f.layer != "selection" and f.severity in ("fatal", "warning")
        ]
        for finding in judged:
            findings[finding.rule] += 1
        for rule in {f.rule for f in judged}:
            files[rule] += 1
    ranked = sorted(files, key=lambda rule: (-files[rule], -findings[rule], rule))
    return [(rule, files[rule], findings[rule]) for rule in ranked]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=None, help="corpus folder (default: ../shared/corpus)")
    parser.add_argument("--top", type=int, default=40, help="how many rules to print")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes")
    parser.add_argument("--ids", action="store_true", help="print the ids only, as JSON")
    args = parser.parse_args(argv)
    corpus = corpus_root(args.corpus)
    if corpus is None:
        print("corpus not found (give --corpus or set FACTURFLOW_CORPUS)", file=sys.stderr)
        return 3
    ranked = frequencies(manifest_paths(corpus), args.jobs)[: args.top]
    if args.ids:
        print(json.dumps([rule for rule, _, _ in ranked], indent=1))
    else:
        print(f"{'rule':<32} {'files':>6} {'findings':>9}")
        for rule, nfiles, nfindings in ranked:
            print(f"{rule:<32} {nfiles:>6} {nfindings:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
