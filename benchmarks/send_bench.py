"""Target 6: what the send stage adds per invoice, beyond validation, against a sandbox on loopback.

The sandbox runs in a separate process (as Qonto would be a separate machine), so that the
sending process's CPU is the client's own cost and the server's CPU is measured apart (the child
reports its own process time).

Steps, all in this one invocation:

1. the same invoices are validated alone (the reference: the send stage validates each one);
2. they are sent with `send_invoices(..., SendOptions(upload="xml"))` (no conversion) to a fresh
   sandbox. The time spent inside `facturflow.validation.validate` during that run is measured
   (wall and CPU) and taken out, which leaves the send stage's own cost: detection and invoice
   fields, the outbox journal (SQLite commits, stored uploads), pre-flight, HTTP import and send.

Reported per invoice: client CPU beyond validation, wall beyond validation (the round trips
included), server CPU, HTTP requests; and the peak request rate against Qonto's published limits.
The send stage imports and sends in a worker thread while it validates the next files, so the
wall figure is how much longer the whole stage takes than its validations: mostly the last
batch's round trips, and one fsync of the outbox before each request (see transmit.outbox).
"""

from __future__ import annotations

import importlib
import multiprocessing
import statistics
import time
from collections.abc import Callable
from itertools import pairwise
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .generate import generate


def _serve(state_dir: Path, conn: Connection) -> None:
    """The sandbox process: serve until told to stop, then report its own CPU time and counters."""
    from facturflow.transmit.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(state_dir=state_dir)) as box:
        conn.send((box.base_url, box.api_key))
        conn.recv()  # "go": the measured run starts
        c0, r0 = time.process_time(), box.requests
        conn.send("ready")
        conn.recv()  # "stop": the measured run is over
        cpu, requests = time.process_time() - c0, box.requests - r0
        submissions = sum(c["submissions"] for c in box.counters().values())
        conn.send({"cpu": cpu, "requests": requests, "submissions": submissions})


def _peak(stamps: list[float], window: float) -> int:
    peak, start = 0, 0
    for end, t in enumerate(stamps):
        while stamps[start] <= t - window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def run_send(workdir: Path, quick: bool, say: Callable[[str], None]) -> dict[str, Any]:
    import httpx

    from facturflow.transmit.pipeline import SendOptions, send_invoices
    from facturflow.transmit.qonto import QontoClient, QontoConfig

    # The module, not the function the package re-exports under the same name.
    validate_module: Any = importlib.import_module("facturflow.validation")
    validate = validate_module.validate
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
    alone_wall, alone_cpu = time.perf_counter() - t0, time.process_time() - c0

    # Time spent validating inside the send run, and the client's HTTP requests.
    inside = {"wall": 0.0, "cpu": 0.0}

    def timed_validate(*args: Any, **kw: Any) -> Any:
        # The validating thread's CPU only: process time would also count the worker thread's
        # imports and sends that overlap the validation, and take them out of the send stage.
        w, c = time.perf_counter(), time.thread_time()
        try:
            return validate(*args, **kw)
        finally:
            inside["wall"] += time.perf_counter() - w
            inside["cpu"] += time.thread_time() - c

    stamps: list[float] = []
    original_send = httpx.Client.send

    def counting_send(self: httpx.Client, request: httpx.Request, **kw: Any) -> httpx.Response:
        stamps.append(time.perf_counter())
        return original_send(self, request, **kw)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(workdir / "sandbox", child), daemon=True)
    server.start()
    try:
        base_url, api_key = parent.recv()
        config = QontoConfig(base_url=base_url, api_key=api_key, timeout=30.0)
        httpx.Client.send = counting_send  # type: ignore[method-assign]
        validate_module.validate = timed_validate
        try:
            with QontoClient(config) as client:
                parent.send("go")
                parent.recv()
                t0, c0 = time.perf_counter(), time.process_time()
                summary = send_invoices(paths, client, workdir / "outbox",
                                        SendOptions(upload="xml"))
                send_wall, send_cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            httpx.Client.send = original_send  # type: ignore[method-assign]
            validate_module.validate = validate
        parent.send("stop")
        served = parent.recv()
    finally:
        server.join(10)
        if server.is_alive():
            server.terminate()
    sent = summary.count("sent")

    client_cpu_ms = (send_cpu - inside["cpu"]) * 1000 / count
    client_wall_ms = (send_wall - inside["wall"]) * 1000 / count
    server_cpu_ms = served["cpu"] * 1000 / count
    per_invoice = len(stamps) / count
    span = (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    peak_1s, peak_10s = _peak(stamps, 1.0), _peak(stamps, 10.0)
    say(f"  {count} generated CII invoices, upload as XML (no conversion), sandbox in its own "
        "process on loopback")
    say(f"  reference, validation alone: wall {alone_wall:.2f} s, cpu {alone_cpu:.2f} s "
        f"({alone_wall * 1000 / count:.1f} ms wall, {alone_cpu * 1000 / count:.1f} ms cpu "
        "per invoice)")
    say(f"  send stage: wall {send_wall:.2f} s, cpu {send_cpu:.2f} s, of which validation "
        f"{inside['wall']:.2f} s wall, {inside['cpu']:.2f} s cpu; {sent}/{count} sent, "
        f"{served['submissions']} submissions")
    say(f"  beyond validation, per invoice: client cpu {client_cpu_ms:.1f} ms, wall "
        f"{client_wall_ms:.1f} ms (round trips included; target < 10 ms); server cpu "
        f"{server_cpu_ms:.1f} ms")
    say(f"  HTTP: {len(stamps)} requests ({per_invoice:.2f} per invoice; server saw "
        f"{served['requests']}) over {span:.1f} s; peak {peak_1s} in any 1 s, {peak_10s} in any "
        "10 s (Qonto: 1,000 / 10 s and 10,000 / 10 min per IP)")
    say("    $ python -m benchmarks.run --only send --no-java   (benchmarks/send_bench.py)")
    return {
        "invoices": count, "sent": sent, "submissions": served["submissions"],
        "validate_alone_seconds": alone_wall, "validate_alone_cpu_seconds": alone_cpu,
        "send_seconds": send_wall, "send_cpu_seconds": send_cpu,
        "validate_inside_seconds": inside["wall"], "validate_inside_cpu_seconds": inside["cpu"],
        "client_cpu_ms_per_invoice": client_cpu_ms, "wall_ms_per_invoice": client_wall_ms,
        "server_cpu_ms_per_invoice": server_cpu_ms, "http_requests": len(stamps),
        "requests_per_invoice": per_invoice, "server_requests": served["requests"],
        "peak_requests_1s": peak_1s, "peak_requests_10s": peak_10s,
        "median_gap_ms": statistics.median(
            [(b - a) * 1000 for a, b in pairwise(stamps)] or [0.0]),
    }
