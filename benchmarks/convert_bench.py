"""Target 5: UBL -> Factur-X PDF throughput (read, write CII, render, embed, validate the result).

Generated French UBL invoices (10 lines each, distinct numbers) are converted with
facturflow.convert(..., to="facturx") on `jobs` spawned worker processes; one warm-up pass lets
each worker compile its stylesheets, then a timed pass is measured (wall and CPU).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .generate import generate


def _convert_one(path: str) -> tuple[bool, float, int]:
    import facturflow.validate  # noqa: F401  (facturflow.rules alone is a circular import)
    from facturflow.convert import convert

    c0 = time.process_time()
    result = convert(path, to="facturx")
    return result.report.ok, time.process_time() - c0, len(result.data)


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
        list(pool.map(_convert_one, paths[: jobs * 2], chunksize=1))  # warm every worker
        t0 = time.perf_counter()
        results = list(pool.map(_convert_one, paths, chunksize=1))
        wall = time.perf_counter() - t0
    cpu = sum(r[1] for r in results)
    valid = sum(1 for r in results if r[0])
    say(f"  {count} generated UBL invoices (10 lines) -> Factur-X PDF/A-3 on {jobs} workers")
    say(f"  facturflow: wall {wall:.2f} s = {count / wall:.1f} invoices/s; cpu {cpu:.2f} s = "
        f"{cpu * 1000 / count:.0f} ms/invoice, i.e. {jobs * count / cpu:.1f} invoices/s on "
        f"{jobs} idle cores; {valid}/{count} outputs valid (target >= 15 invoices/s)")
    say("  reference: none (no Java converter runs the same pipeline); the target is absolute")
    say("    $ python -m benchmarks.run --only convert   (benchmarks/convert_bench.py)")
    return {"invoices": count, "wall_seconds": wall, "cpu_seconds": cpu, "valid": valid,
            "per_second_wall": count / wall, "per_second_cpu_bound": jobs * count / cpu}
