"""The verdict cache (issue 16): re-validating an unchanged folder of 1,000 invoices.

    python -m benchmarks.verdict_cache [--count 1000] [--jobs 2] [--corpus DIR] [--json FILE]

Builds a folder of `count` invoices from the corpus's UBL and CII files (repeated until there
are enough; each repetition gets a comment of its own at the end, so that every file has its own
bytes and the cold run validates every one), then times, each as a fresh process (wall and CPU
seconds, the CPU of worker processes included):

- process start: `python -c "import facturflow.cli, facturflow.validation, facturflow.reports"`
  (the interpreter and what `facturflow validate` imports before it looks at a file);
- cold: `facturflow validate -q --cache DIR folder/` with an empty cache (-q: the pre-flight
  output, one line per invalid file);
- warm, as is: the same command again. A file whose report is not a complete verdict (a
  stylesheet that failed on it: LAYER-FAILED) is never cached, so it is validated again, and
  starts a worker that compiles its stylesheets: the figure says how many there were;
- warm: those files replaced by other copies (validated once into the cache, untimed), the
  same command on the folder of `count` files, every one a hit; then with `--format json`;
- and, in this process, `validate_many(files, cache=...)` on that folder: the lookups alone.

The warm JSON report must say `cached` for every file and equal the cold one otherwise (the
script exits 1 if not). Nothing here asserts on times: benchmarks measure (benchmarks/README.md).
Python writes bytecode for the subprocesses (PYTHONDONTWRITEBYTECODE is unset for them), as an
installed package has it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def corpus_root(arg: str | None) -> Path:
    default = str(REPO.parent / "shared" / "corpus")
    for candidate in (arg, os.environ.get("FACTURFLOW_CORPUS"), default):
        if candidate and (Path(candidate) / "MANIFEST.tsv").is_file():
            return Path(candidate)
    raise SystemExit("corpus not found: give --corpus DIR or set FACTURFLOW_CORPUS")


def build_folder(corpus: Path, count: int, target: Path) -> list[Path]:
    """`count` invoices of the corpus (UBL and CII XML), each with bytes of its own."""
    sources = sorted([*corpus.glob("ubl/*.xml"), *corpus.glob("cii/*.xml")])
    if not sources:
        raise SystemExit(f"no UBL or CII invoices under {corpus}")
    target.mkdir(parents=True)
    files = []
    for index in range(count):
        source = sources[index % len(sources)]
        copy = target / f"{index:05d}-{source.name}"
        data = source.read_bytes()
        if index >= len(sources):  # a repetition: same verdict, other bytes
            data += f"\n<!-- copy {index} -->\n".encode()
        copy.write_bytes(data)
        files.append(copy)
    return files


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its children, standard output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode not in (0, 1):
        raise SystemExit(f"{command} failed ({result.returncode}): {result.stderr[-2000:]}")
    return wall, cpu, result.stdout


def complete(report: dict[str, Any]) -> bool:
    """What the cache stores: read, every layer ran, no LAYER-FAILED finding."""
    return (
        report.get("error") is None
        and all(layer["ran"] for layer in report["layers"])
        and not any(f["rule"] == "LAYER-FAILED" for f in report["findings"])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="invoices in the folder")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the cold run")
    parser.add_argument("--corpus", default=None, help="corpus folder (default: FACTURFLOW_CORPUS)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    corpus = corpus_root(args.corpus)
    cli = [sys.executable, "-m", "facturflow"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *sys.path[1:]])}
    for name in ("FACTURFLOW_VERDICT_CACHE", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    figures: dict[str, Any] = {"invoices": args.count, "jobs": args.jobs}
    with tempfile.TemporaryDirectory(prefix="facturflow-cache-bench-") as tmp:
        work = Path(tmp)
        folder = work / "invoices"
        files = build_folder(corpus, args.count, folder)
        cache = work / "verdicts"
        quiet = [*cli, "validate", "--jobs", str(args.jobs), "--cache", str(cache), "-q"]
        json_cmd = [*cli, "validate", "--jobs", str(args.jobs), "--cache", str(cache),
                    "--format", "json"]
        imports = [sys.executable, "-c", "import facturflow.cli, facturflow.validation, "
                   "facturflow.reports"]
        starts = [timed(imports, env)[:2] for _ in range(3)]
        start, start_cpu = min(w for w, _ in starts), min(c for _, c in starts)
        print(f"{args.count} invoices in {folder}; cold run...", flush=True)
        cold, cold_cpu, _ = timed([*json_cmd, "-o", str(work / "cold.json"), str(folder)], env)
        first = json.loads((work / "cold.json").read_text())["files"]
        incomplete = [Path(r["path"]) for r in first if not complete(r)]
        as_is, as_is_cpu, _ = timed([*quiet, str(folder)], env)
        # The incomplete ones replaced by copies of complete ones, validated once (untimed).
        sources = [Path(r["path"]) for r in first if complete(r)]
        for number, old in enumerate(incomplete):
            old.unlink()
            source = sources[number % len(sources)]
            (folder / f"r{number:04d}-{source.name.split('-', 1)[1]}").write_bytes(
                source.read_bytes() + f"\n<!-- replacement {number} -->\n".encode()
            )
        if incomplete:
            timed([*quiet, str(folder)], env)
        warm, warm_cpu, _ = timed([*quiet, str(folder)], env)
        warm_json, warm_json_cpu, _ = timed([*json_cmd, "-o", str(work / "warm.json"),
                                             str(folder)], env)
        second = json.loads((work / "warm.json").read_text())["files"]
        kept = {r["path"] for r in first if complete(r)}
        all_cached = all(r["cached"] for r in second) and not any(r["cached"] for r in first)
        before = {r["path"]: {k: v for k, v in r.items() if k != "cached"} for r in first}
        identical = all(
            {k: v for k, v in r.items() if k != "cached"} == before[r["path"]]
            for r in second if r["path"] in kept
        )

        sys.path.insert(0, str(REPO / "src"))
        from facturflow import VerdictCache
        from facturflow.validation import validate_many

        names = sorted(folder.iterdir())
        started = time.perf_counter()
        cpu_before = time.process_time()
        reports = list(validate_many(names, jobs=args.jobs, timeout=300, cache=VerdictCache(cache)))
        lookups, lookups_cpu = time.perf_counter() - started, time.process_time() - cpu_before
        all_cached = all_cached and all(r.cached for r in reports) and len(reports) == args.count
    figures.update(
        distinct_sources=len({f.name.split("-", 1)[1] for f in files}),
        incomplete_verdicts=len(incomplete),
        process_start_s=round(start, 3),
        process_start_cpu_s=round(start_cpu, 3),
        cold_s=round(cold, 2),
        cold_cpu_s=round(cold_cpu, 2),
        warm_as_is_s=round(as_is, 2),
        warm_as_is_cpu_s=round(as_is_cpu, 2),
        warm_s=round(warm, 3),
        warm_cpu_s=round(warm_cpu, 3),
        warm_beyond_start_s=round(warm - start, 3),
        warm_json_s=round(warm_json, 3),
        in_process_lookups_s=round(lookups, 3),
        in_process_lookups_cpu_s=round(lookups_cpu, 3),
        ratio_cold_to_warm=round(cold / warm, 1),
        warm_all_cached=all_cached,
        reports_identical=identical,
        load_average=[round(x, 1) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    )
    print(f"verdict cache, {args.count} invoices ({figures['distinct_sources']} corpus files, "
          f"repeated), --jobs {args.jobs}; seconds: wall (CPU)")
    print(f"  process start (imports)                 {start:7.2f} ({start_cpu:.2f})")
    print(f"  cold run, empty cache (--format json)   {cold:7.2f} ({cold_cpu:.2f})")
    print(f"  warm, as is: {len(incomplete)} files not cached "
          f"(LAYER-FAILED), validated again  {as_is:7.2f} ({as_is_cpu:.2f})")
    print(f"  warm, every file a hit (-q)             {warm:7.2f} ({warm_cpu:.2f})   "
          f"{warm - start:.2f} s beyond process start")
    print(f"  warm, every file a hit (--format json)  {warm_json:7.2f} ({warm_json_cpu:.2f})")
    print(f"  warm, in process (lookups only)         {lookups:7.2f} ({lookups_cpu:.2f})")
    print(f"  ratio cold / warm                       {cold / warm:7.1f}")
    print(f"  warm: every file cached: {all_cached}; same reports as the cold run: {identical}")
    print(f"  load average: {figures['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all_cached and identical else 1


if __name__ == "__main__":
    sys.exit(main())
