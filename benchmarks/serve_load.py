"""Load test of `facturflow serve` (issue 16), loopback only, bounded in time and count.

In one invocation, on the same files:

1. BatchValidator, `--jobs` warmed workers: the reference throughput (files/s), best of
   `--rounds` passes over the files after a warm-up pass;
2. the service (`facturflow serve --jobs J` as a subprocess on 127.0.0.1, a free port), closed
   loop: `--clients` clients, each posting the files in turn over a kept-alive connection, as
   fast as answers come, for `--seconds` (or `--max-requests`): throughput, p50/p95/p99 latency,
   errors (anything but 200, or a failed request: must be 0), and the service's memory (its
   process and its workers' resident sets, summed) sampled every second;
3. open loop at `--load` (default 0.8) × the BatchValidator throughput, for `--open-seconds`:
   requests sent on a fixed schedule whatever the answers, each latency measured from its
   scheduled time (a late answer delays no later request's clock): p50/p95/p99, for all files and
   for the typical ones (under 20 KB, the size of most invoices).

    python -m benchmarks.serve_load                       # 60 s closed + 30 s open loop
    python -m benchmarks.serve_load --seconds 15 --open-seconds 10 --clients 4

Files: the corpus's UBL and CII invoices (FACTURFLOW_CORPUS or ../shared/corpus), else
generated ones. Exit code 1 when any request failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
TYPICAL_BYTES = 20_000


def corpus_files(corpus: str | None, limit: int | None) -> list[bytes]:
    default = str(REPO.parent / "shared" / "corpus")
    for candidate in (corpus, os.environ.get("FACTURFLOW_CORPUS"), default):
        if candidate and (Path(candidate) / "MANIFEST.tsv").is_file():
            root = Path(candidate)
            paths = sorted([*root.glob("ubl/*.xml"), *root.glob("cii/*.xml")])
            return [p.read_bytes() for p in paths[:limit]]
    from .generate import generate

    return [generate(n, s, seed=i) for i, (n, s) in
            enumerate((n, s) for n in (5, 20, 60) for s in ("ubl", "cii"))]


def batch_throughput(files: list[bytes], jobs: int, rounds: int, folder: Path) -> float:
    """The best files/s of `rounds` warmed passes; prints the CPU per file (process + workers)."""
    from facturflow.validation import BatchValidator

    paths = []
    for number, data in enumerate(files):
        path = folder / f"{number:05d}.xml"
        path.write_bytes(data)
        paths.append(path)
    best = 0.0
    with BatchValidator(jobs=jobs) as validator:
        list(validator.validate_many(paths))  # warm: every worker compiles
        me = os.getpid()
        workers = children(me)
        cpu = time.process_time() + sum(cpu_seconds(w) for w in workers)
        for _ in range(rounds):
            started = time.perf_counter()
            list(validator.validate_many(paths))
            best = max(best, len(paths) / (time.perf_counter() - started))
        spent = time.process_time() + sum(cpu_seconds(w) for w in workers) - cpu
    print(f"BatchValidator CPU per file: {1000 * spent / (rounds * len(paths)):.2f} ms "
          "(process and workers)")
    return best


def percentiles(latencies: list[float]) -> dict[str, float]:
    if len(latencies) < 2:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (workers), in MB."""
    total, todo = 0.0, [pid]
    page = os.sysconf("SC_PAGE_SIZE") / 1024**2
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


class Server:
    def __init__(self, jobs: int, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "FACTURFLOW_SERVE_TOKEN": ""}
        # --no-cache: the driver posts the same files again and again, which the verdict cache
        # would answer without a worker; validation is what is measured here.
        # The access log goes to a file: a pipe read by this (busy) process could fill up and
        # hold the service's event loop on a write.
        self.log_path = log
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "facturflow", "serve", "--host", "127.0.0.1", "--port", "0",
             "--jobs", str(jobs), "--queue", "10000", "--no-cache"],
            stderr=self.log, env=env,
        )
        self.url = ""
        deadline = time.monotonic() + 300
        while not self.url and time.monotonic() < deadline and self.proc.poll() is None:
            for line in log.read_text().splitlines():
                if '"event": "listening"' in line:
                    self.url = json.loads(line)["url"]
            time.sleep(0.1)
        if not self.url:
            raise SystemExit("the service did not start")
        while httpx.get(self.url + "/readyz").status_code != 200:
            time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self.log.close()
        return code


def closed_loop(url: str, files: list[bytes], clients: int, seconds: float,
                max_requests: int) -> tuple[list[tuple[int, float]], int, float]:
    """(file index, latency) of each answered request, errors, elapsed seconds."""
    results: list[tuple[int, float]] = []
    errors = 0
    lock = threading.Lock()
    sent = 0
    deadline = time.perf_counter() + seconds

    def client(number: int) -> None:
        nonlocal errors, sent
        index = number * 7919
        with httpx.Client(timeout=120, headers={"Content-Type": "application/xml"}) as session:
            while time.perf_counter() < deadline:
                with lock:
                    if sent >= max_requests:
                        return
                    sent += 1
                index = (index + 1) % len(files)
                started = time.perf_counter()
                try:
                    ok = session.post(url, content=files[index]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    if ok:
                        results.append((index, time.perf_counter() - started))
                    else:
                        errors += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors, time.perf_counter() - started


def open_loop(url: str, files: list[bytes], rate: float, seconds: float,
              max_requests: int) -> tuple[list[tuple[int, float]], int]:
    count = min(max_requests, int(rate * seconds))
    threads = 64
    # One client for all threads (thread-safe, kept-alive connections), made before the clock
    # starts: making one per thread would spend the first seconds building SSL contexts.
    session = httpx.Client(timeout=120, headers={"Content-Type": "application/xml"},
                           limits=httpx.Limits(max_connections=threads,
                                               max_keepalive_connections=threads))

    def one(number: int, due: float) -> tuple[int, float] | None:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        index = (number * 7919) % len(files)
        try:
            answer = session.post(url, content=files[index])
        except httpx.HTTPError:
            return None
        return (index, time.perf_counter() - due) if answer.status_code == 200 else None

    start = time.perf_counter() + 0.5
    with session, concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one, n, start + n / rate) for n in range(count)]
        answers = [f.result() for f in futures]
    done = [a for a in answers if a is not None]
    return done, len(answers) - len(done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="closed loop duration")
    parser.add_argument("--open-seconds", type=float, default=30.0, help="open loop duration")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--load", type=float, default=0.8,
                        help="open-loop rate as a share of BatchValidator's throughput")
    parser.add_argument("--rounds", type=int, default=3, help="BatchValidator passes (best kept)")
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=None, help="use the first N corpus files")
    parser.add_argument("--corpus", default=None)
    args = parser.parse_args(argv)
    if args.seconds > 600 or args.open_seconds > 600:
        parser.error("bounded: at most 600 s per phase")

    import tempfile

    files = corpus_files(args.corpus, args.files)
    typical = {i for i, data in enumerate(files) if len(data) < TYPICAL_BYTES}
    print(f"{len(files)} files ({len(typical)} under {TYPICAL_BYTES // 1000} KB), "
          f"jobs {args.jobs}, clients {args.clients}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        reference = batch_throughput(files, args.jobs, args.rounds, Path(folder))
    print(f"BatchValidator ({args.jobs} warmed workers): {reference:.1f} files/s")

    log_folder = Path(tempfile.mkdtemp(prefix="serve-load-"))
    server = Server(args.jobs, log_folder / "service.log")
    url = server.url + "/v1/validate"
    samples: list[tuple[float, float]] = []
    sampling = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not sampling.wait(1.0):
            samples.append((time.perf_counter() - t0, tree_rss_mb(server.proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    failures = 0
    try:
        # Warm, as BatchValidator was: every file once, so that every worker has compiled the
        # stylesheets the files need (XRechnung, Peppol, ... beyond the start-up warm-up's).
        started = time.perf_counter()
        with httpx.Client(timeout=300, headers={"Content-Type": "application/xml"}) as session, \
                concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            codes = list(pool.map(lambda data: session.post(url, content=data).status_code,
                                  files))
        failures += sum(code != 200 for code in codes)
        print(f"service warm-up: {len(codes)} requests in {time.perf_counter() - started:.1f} s")
        t0 = time.perf_counter()
        sampler.start()  # memory from here: after every worker has compiled what it needs
        pid = server.proc.pid
        workers = children(pid)
        cpu = (cpu_seconds(pid), sum(cpu_seconds(w) for w in workers), time.process_time())
        results, errors, elapsed = closed_loop(url, files, args.clients, args.seconds,
                                               args.max_requests)
        try:
            spent = (cpu_seconds(pid) - cpu[0], sum(cpu_seconds(w) for w in workers) - cpu[1],
                     time.process_time() - cpu[2])
            print("CPU per request, closed loop: service process {:.2f} ms (HTTP, routing, "
                  "reports), its workers {:.2f} ms, this client {:.2f} ms".format(
                      *(1000 * x / max(1, len(results)) for x in spent)))
        except OSError:  # a worker replaced meanwhile
            pass
        failures += errors
        throughput = len(results) / elapsed
        cut = percentiles([latency for _, latency in results])
        print(f"service, closed loop {elapsed:.1f} s: {len(results)} requests, "
              f"{throughput:.1f}/s ({throughput / reference:.0%} of BatchValidator), "
              f"p50 {cut['p50']:.1f} ms, p95 {cut['p95']:.1f} ms, p99 {cut['p99']:.1f} ms, "
              f"errors {errors}")
        rate = args.load * reference
        logged = len(server.log_path.read_text().splitlines())
        done, errors = open_loop(url, files, rate, args.open_seconds, args.max_requests)
        inside = [json.loads(line)["duration_ms"] / 1000
                  for line in server.log_path.read_text().splitlines()[logged:]
                  if '"path": "/v1/validate"' in line]
        failures += errors
        every = percentiles([latency for _, latency in done])
        usual = percentiles([latency for index, latency in done if index in typical])
        print(f"service, open loop at {rate:.1f}/s ({args.load:.0%} of BatchValidator) for "
              f"{args.open_seconds:g} s: {len(done)} requests, all files p50 {every['p50']:.1f} "
              f"/ p95 {every['p95']:.1f} / p99 {every['p99']:.1f} ms; typical (<20 KB) p50 "
              f"{usual['p50']:.1f} / p95 {usual['p95']:.1f} / p99 {usual['p99']:.1f} ms; "
              f"errors {errors}")
        side = percentiles(inside)
        print(f"  the same requests as the service timed them (its access log, from the request "
              f"read to the answer sent): p50 {side['p50']:.1f} / p95 {side['p95']:.1f} / p99 "
              f"{side['p99']:.1f} ms; load average now {os.getloadavg()[0]:.2f}")
        metrics = httpx.get(server.url + "/metrics").text
        restarts = [line for line in metrics.splitlines()
                    if line.startswith("facturflow_worker_restarts_total ")]
        print("service " + (restarts[0] if restarts else "restarts: unknown"))
    finally:
        sampling.set()
        if sampler.is_alive():
            sampler.join()
        code = server.stop()
    if samples:
        third = max(1, len(samples) // 3)
        first = statistics.mean(mb for _, mb in samples[:third])
        last = statistics.mean(mb for _, mb in samples[-third:])
        trace = ", ".join(f"{t:.0f}s {mb:.0f}" for t, mb in samples[:: max(1, len(samples) // 10)])
        print(f"service memory (process + workers, MB): {trace}; first third {first:.0f}, "
              f"last third {last:.0f} ({last - first:+.0f} MB)")
    print(f"service stopped (exit code {code}); errors in all: {failures}")
    import shutil

    shutil.rmtree(log_folder, ignore_errors=True)
    return 1 if failures or code != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
