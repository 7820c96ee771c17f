"""Memory of one validating worker: `python -m benchmarks.memory COUNT FILE...` (a fresh process).

`python -m benchmarks.memory --pool JOBS COUNT FILE...` measures the batch case instead:
`validate_many` on JOBS worker processes (syntax affinity on, as by default) over the files
repeated to COUNT, the parent sampling every worker's RSS and peak (VmHWM) twice a second.

Validates the files round-robin COUNT times with facturflow.validate in this one process and prints
JSON: resident set size (RSS) samples at checkpoints and the peak (VmHWM). Growth is measured from
the end of the first full round (once every stylesheet is compiled) to the end. The peak is also
given for the first round (compiling) and for the rest (steady state; VmHWM is reset in between,
where Linux allows it), with the RSS at the end split by mapping: Saxon's Java heap (the GraalVM
isolate's anonymous memory), its image heap and code, and the rest (Python, lxml, malloc).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _shares_mb() -> dict[str, float]:
    """RSS by kind of mapping; the isolate is the span of its address-space reservation."""
    maps: list[tuple[int, int, str, int]] = []
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and len(head[1]) == 4:
            start, end = (int(x, 16) for x in head[0].split("-"))
            maps.append((start, end, head[5] if len(head) > 5 else "", 0))
        elif line.startswith("Rss:") and maps:
            start, end, path, _ = maps[-1]
            maps[-1] = (start, end, path, int(line.split()[1]))
    reserve = [m for m in maps if m[1] - m[0] >= 1 << 30 and not m[2]]
    top = max((m[1] for m in reserve), default=0)
    base = min(
        (m[0] for m in maps if "saxonc-core" in m[2] and top - (33 << 30) <= m[0] < top),
        default=top,
    )
    out = {
        "saxon_java_heap": 0.0,
        "saxon_image_heap": 0.0,
        "saxon_code": 0.0,
        "python_and_rest": 0.0,
    }
    for start, _end, path, rss in maps:
        if base <= start < top:
            kind = "saxon_image_heap" if path else "saxon_java_heap"
        elif "saxonc" in path:
            kind = "saxon_code"
        else:
            kind = "python_and_rest"
        out[kind] += rss / 1024
    return {k: round(v, 1) for k, v in out.items()}


def _proc_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main_pool(jobs: int, count: int, files: list[Path]) -> int:
    import multiprocessing
    import threading

    from facturflow.validation import syntax_family, validate_many

    names = [str(files[i % len(files)]) for i in range(count)]
    peaks: dict[int, float] = {}  # worker pid -> last VmHWM seen (MB)
    rss: dict[int, list[float]] = {}  # worker pid -> RSS samples (MB)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            for child in multiprocessing.active_children():
                pid = child.pid
                if pid is None:
                    continue
                hwm, now = _proc_kb(pid, "VmHWM") / 1024, _proc_kb(pid, "VmRSS") / 1024
                if hwm:
                    peaks[pid] = max(peaks.get(pid, 0.0), hwm)
                    rss.setdefault(pid, []).append(now)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    invalid = 0
    for report in validate_many(names, jobs=jobs):
        invalid += 0 if report.ok else 1
    stop.set()
    sampler.join()
    per_worker = [
        {
            "peak_rss_mb": round(peaks[pid], 1),
            # RSS a quarter into the worker's life (compiled by then), and at its end.
            "rss_settled_mb": round(rss[pid][len(rss[pid]) // 4], 1),
            "rss_last_mb": round(rss[pid][-1], 1),
            "samples": len(rss[pid]),
        }
        for pid in sorted(peaks)
    ]
    long_lived = [w for w in per_worker if w["samples"] >= 10]
    print(
        json.dumps(
            {
                "mode": "pool",
                "jobs": jobs,
                "validations": count,
                "files": len(files),
                "syntaxes": sorted({str(syntax_family(str(f))) for f in files}),
                "workers": per_worker,
                "peak_rss_mb": max((w["peak_rss_mb"] for w in per_worker), default=0.0),
                # Growth of the workers that lived long enough to tell (10 samples or more).
                "growth_mb": max(
                    (w["rss_last_mb"] - w["rss_settled_mb"] for w in long_lived), default=0.0
                ),
                "invalid_reports": invalid,
                "seconds": time.perf_counter() - started,
            }
        )
    )
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--pool":
        return main_pool(int(argv[1]), int(argv[2]), [Path(p) for p in argv[3:]])
    count = int(argv[0])
    files = [Path(p) for p in argv[1:]]
    import facturflow
    from facturflow.validation import saxonheap

    datas = [f.read_bytes() for f in files]  # read once: measure validation, not file caching
    checkpoints = sorted({len(files), *(int(count * k / 10) for k in range(1, 11))})
    samples: list[dict[str, float]] = []
    fatal_reports = 0
    peak_first_round = 0.0
    started = time.perf_counter()
    for i in range(1, count + 1):
        report = facturflow.validate(datas[(i - 1) % len(datas)])
        fatal_reports += 0 if report.ok else 1
        del report
        if i in checkpoints:
            gc.collect()
            samples.append(
                {
                    "validations": i,
                    "rss_mb": _status_kb("VmRSS") / 1024,
                    "seconds": time.perf_counter() - started,
                }
            )
        if i == len(files):
            peak_first_round = _status_kb("VmHWM") / 1024
            if not _reset_peak():
                peak_first_round = 0.0
    base = next((s for s in samples if s["validations"] >= len(files)), samples[0])
    print(
        json.dumps(
            {
                "validations": count,
                "files": len(files),
                "peak_rss_mb": max(peak_first_round, _status_kb("VmHWM") / 1024),
                "peak_first_round_mb": peak_first_round or None,
                "peak_after_first_round_mb": _status_kb("VmHWM") / 1024
                if peak_first_round
                else None,
                "rss_end_shares_mb": _shares_mb(),
                "saxon_isolate": saxonheap.status,
                "cpu_seconds": time.process_time(),
                "rss_after_first_round_mb": base["rss_mb"],
                "rss_end_mb": samples[-1]["rss_mb"],
                "growth_mb": samples[-1]["rss_mb"] - base["rss_mb"],
                "samples": samples,
                "invalid_reports": fatal_reports,
                "seconds": time.perf_counter() - started,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
