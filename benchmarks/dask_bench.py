"""Target 7: batch validation on a Dask cluster against the local worker pool (issue 17).

The same files are validated by facturflow's local pool (BatchValidator, `jobs` processes) and
by a dask.distributed LocalCluster of 1 and of `jobs` worker processes (one thread each, on
loopback: what `dask scheduler` + `dask worker --nthreads 1` run on machines), through the same
library call with `executor=`. Each runner first validates the whole set once (its workers
compile their stylesheets; not timed), then validates it twice, timed, and the better pass counts:
a warm steady state, as in a long batch. The figures: wall time, invoices per second, the
cluster's throughput relative to the local pool's, and the CPU cost of one invoice (the local
pool's wall time x workers / files: an upper bound, every core busy), from which
benchmarks/README.md sizes a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _timed(
    validate: Callable[[Sequence[str]], list[Any]], files: Sequence[str], rounds: int = 2
) -> float:
    """The best of `rounds` timed passes, after a warm-up pass (every worker compiles its
    stylesheets): on a shared machine the best pass is the one least slowed by the others."""
    validate(files)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        reports = validate(files)
        best = min(best, time.perf_counter() - started)
        assert len(reports) == len(files)
    return best


def run_dask(files: Sequence[Path], jobs: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Measure; return the figures (also printed with `say`)."""
    try:
        import distributed
    except ImportError:
        say("  not available: dask.distributed is not installed (pip install 'facturflow[dask]')")
        return {}
    from facturflow.validation import BatchValidator

    names = [str(p) for p in files]
    results: dict[str, Any] = {"files": len(names)}
    with BatchValidator(jobs=jobs) as local:
        seconds = _timed(lambda batch: list(local.validate_many(batch)), names)
    results["local"] = seconds
    say(f"  local pool, {jobs} processes: {seconds:.2f} s, {len(names) / seconds:.0f} invoices/s")
    for workers in sorted({1, jobs}):
        with distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
            host="127.0.0.1",
        ) as cluster, distributed.Client(cluster) as client, BatchValidator(
            executor=client
        ) as remote:
            seconds = _timed(lambda batch: list(remote.validate_many(batch)), names)
        results[f"dask{workers}"] = seconds
        say(f"  Dask LocalCluster, {workers} worker process(es): {seconds:.2f} s, "
            f"{len(names) / seconds:.0f} invoices/s, {results['local'] / seconds:.2f} x the "
            "local pool's throughput")
    per_invoice = results["local"] * jobs / len(names)
    results["cpu_per_invoice"] = per_invoice
    say(f"  CPU per invoice (local pool, every core busy): {per_invoice * 1000:.1f} ms")
    cores = 10_000_000 / 86_400 * per_invoice
    say(f"  10 million invoices a day = {10_000_000 / 86_400:.0f} invoices/s on average = "
        f"{cores:.1f} busy cores (see benchmarks/README.md for the sizing)")
    say("    $ python -m benchmarks.run --only dask   (benchmarks/dask_bench.py)")
    return results
