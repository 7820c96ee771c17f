"""Target 5: UBL -> Factur-X PDF throughput (read, write CII, render, embed, validate the result).

Generated French UBL invoices (10 lines each, distinct numbers) are converted with
facturflow.convert(..., to="facturx") on `jobs` spawned worker processes; one warm-up pass lets
each worker compile its stylesheets and parse its fonts (its CPU is reported as the per-worker
start-up cost), then a timed pass is measured (wall and CPU).

Reference, in the same invocation and on the same workers: the same conversions with the
renderer's per-process font caches switched off (fpdf2's own add_font parsing the TrueType files
and subsetting them for every document, as facturflow did before), so the ratio shows what the
caches save; the layout itself has no switch and is the same in both passes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .generate import generate

_converted_here = False  # set in a worker after its first conversion


def _convert_one(path: str, plain_fonts: bool = False) -> tuple[bool, float, int, bool]:
    """(valid, CPU seconds, output size, whether it was this worker's first conversion)."""
    global _converted_here
    from facturflow.conversion import convert
    from facturflow.render import pdf as render_pdf

    render_pdf._plain_fpdf = plain_fonts
    c0 = time.process_time()
    result = convert(path, to="facturx")
    first, _converted_here = not _converted_here, True
    return result.report.ok, time.process_time() - c0, len(result.data), first


def _convert_plain(path: str) -> tuple[bool, float, int, bool]:
    return _convert_one(path, plain_fonts=True)


def run_convert(workdir: Path, quick: bool, jobs: int, say: Callable[[str], None]
                ) -> dict[str, Any]:
    count = 20 if quick else 100
    folder = workdir / "convert-in"
    folder.mkdir(exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"ubl-{seed:04d}.xml"
        path.write_bytes(generate(10, "ubl", seed=seed))
        paths.append(str(path))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        # Workers take tasks from one queue: the first conversion of each is recorded by the
        # worker itself, not assumed from the order of the tasks.
        warm = list(pool.map(_convert_one, paths[:jobs], chunksize=1))
        warm += pool.map(_convert_one, paths[: jobs * 2], chunksize=1)
        t0 = time.perf_counter()
        results = list(pool.map(_convert_one, paths, chunksize=1))
        wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = list(pool.map(_convert_plain, paths, chunksize=1))
        plain_wall = time.perf_counter() - t0
    cpu = sum(r[1] for r in results)
    plain_cpu = sum(r[1] for r in plain)
    valid = sum(1 for r in results if r[0])
    size = statistics.mean(r[2] for r in results)
    first = statistics.mean(r[1] for r in warm if r[3])
    say(f"  {count} generated UBL invoices (10 lines) -> Factur-X PDF/A-3 on {jobs} workers")
    say(f"  facturflow: wall {wall:.2f} s = {count / wall:.1f} invoices/s; cpu {cpu:.2f} s = "
        f"{cpu * 1000 / count:.0f} ms/invoice, i.e. {jobs * count / cpu:.1f} invoices/s on "
        f"{jobs} idle cores; {valid}/{count} outputs valid (target >= 15 invoices/s)")
    say(f"  first conversion in a fresh worker (stylesheets, fonts, subsets): "
        f"{first * 1000:.0f} ms cpu; mean output {size / 1024:.1f} KiB")
    say(f"  reference, font caches off (fpdf2 add_font + subsetting per document): wall "
        f"{plain_wall:.2f} s, cpu {plain_cpu * 1000 / count:.0f} ms/invoice; "
        f"ratio {plain_cpu / cpu:.2f}x cpu")
    say("    $ python -m benchmarks.run --only convert   (benchmarks/convert_bench.py)")
    return {"invoices": count, "wall_seconds": wall, "cpu_seconds": cpu, "valid": valid,
            "per_second_wall": count / wall, "per_second_cpu_bound": jobs * count / cpu,
            "first_conversion_cpu_seconds": first, "mean_output_bytes": size,
            "reference_plain_fonts_cpu_seconds": plain_cpu,
            "reference_plain_fonts_wall_seconds": plain_wall}
