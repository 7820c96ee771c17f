"""Target 6: what the send stage adds per invoice, against the sandbox on loopback.

The same invoices are first validated alone (the floor: the send stage validates each one), then
sent with `send_invoices(..., SendOptions(upload="xml"))` (no conversion) to a fresh sandbox. The
difference per invoice is the send stage's overhead: outbox journal, pre-flight, HTTP import and
send, and the sandbox's own work, which runs in this process too (so it is an upper bound).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from .generate import generate


def run_send(workdir: Path, quick: bool, say: Callable[[str], None]) -> dict[str, Any]:
    import httpx

    import facturflow.validate  # noqa: F401  (facturflow.rules alone is a circular import)
    from facturflow.transmit.pipeline import SendOptions, send_invoices
    from facturflow.transmit.qonto import QontoClient, QontoConfig
    from facturflow.transmit.sandbox import Sandbox, SandboxConfig
    from facturflow.validate import validate

    count = 20 if quick else 100
    folder = workdir / "send-in"
    folder.mkdir(exist_ok=True)
    paths = []
    for seed in range(count):  # distinct invoice numbers: FA-2026-<seed>-...
        path = folder / f"inv-{seed:04d}.xml"
        path.write_bytes(generate(5, "cii", seed=seed))
        paths.append(path)
    validate(paths[0])  # compile the stylesheets before anything is timed

    t0, c0 = time.perf_counter(), time.process_time()
    for path in paths:
        assert validate(path).ok, path
    validate_wall, validate_cpu = time.perf_counter() - t0, time.process_time() - c0

    requests: list[float] = []
    original_send = httpx.Client.send

    def counting_send(self: httpx.Client, request: httpx.Request, **kw: Any) -> httpx.Response:
        requests.append(time.perf_counter())
        return original_send(self, request, **kw)

    httpx.Client.send = counting_send  # type: ignore[method-assign]
    try:
        with Sandbox(SandboxConfig(state_dir=workdir / "sandbox")) as box:
            config = QontoConfig(base_url=box.base_url, api_key=box.api_key, timeout=30.0)
            with QontoClient(config) as client:
                t0, c0 = time.perf_counter(), time.process_time()
                summary = send_invoices(paths, client, workdir / "outbox",
                                        SendOptions(upload="xml"))
                send_wall, send_cpu = time.perf_counter() - t0, time.process_time() - c0
            sent = summary.count("sent")
            submissions = sum(c["submissions"] for c in box.counters().values())
    finally:
        httpx.Client.send = original_send  # type: ignore[method-assign]

    overhead_ms = (send_wall - validate_wall) * 1000 / count
    overhead_cpu_ms = (send_cpu - validate_cpu) * 1000 / count
    span = (requests[-1] - requests[0]) if len(requests) > 1 else 0.0
    peak_10s = max((sum(1 for t in requests if s <= t < s + 10) for s in requests), default=0)
    say(f"  {count} generated CII invoices, upload as XML (no conversion), sandbox on loopback")
    say(f"  validation alone: wall {validate_wall:.2f} s, cpu {validate_cpu:.2f} s "
        f"({validate_wall * 1000 / count:.1f} ms/invoice)")
    say(f"  send stage (validate + outbox + import + send): wall {send_wall:.2f} s, cpu "
        f"{send_cpu:.2f} s; {sent}/{count} sent, {submissions} submissions")
    say(f"  overhead of the send stage: {overhead_ms:.1f} ms/invoice wall, {overhead_cpu_ms:.1f} "
        f"ms/invoice cpu (sandbox server included; target < 10 ms)")
    say(f"  HTTP requests: {len(requests)} over {span:.1f} s; peak {peak_10s} in any 10 s "
        f"(Qonto's limits: 1,000 / 10 s and 10,000 / 10 min per IP)")
    say("    $ python -m benchmarks.run --only send   (benchmarks/send_bench.py)")
    return {
        "invoices": count, "validate_seconds": validate_wall, "validate_cpu_seconds": validate_cpu,
        "send_seconds": send_wall, "send_cpu_seconds": send_cpu, "sent": sent,
        "overhead_ms_per_invoice": overhead_ms, "overhead_cpu_ms_per_invoice": overhead_cpu_ms,
        "http_requests": len(requests), "peak_requests_10s": peak_10s,
        "median_gap_ms": statistics.median(
            [(b - a) * 1000 for a, b in pairwise(requests)] or [0.0]),
    }
