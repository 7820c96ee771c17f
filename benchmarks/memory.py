"""Memory of one validating worker: `python -m benchmarks.memory COUNT FILE...` (a fresh process).

Validates the files round-robin COUNT times with facturflow.validate in this one process and prints
JSON: resident set size (RSS) samples at checkpoints and the peak (VmHWM). Growth is measured from
the end of the first full round (once every stylesheet is compiled) to the end.
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


def main(argv: list[str]) -> int:
    count = int(argv[0])
    files = [Path(p) for p in argv[1:]]
    import facturflow

    datas = [f.read_bytes() for f in files]  # read once: measure validation, not file caching
    checkpoints = sorted({len(files), *(int(count * k / 10) for k in range(1, 11))})
    samples: list[dict[str, float]] = []
    fatal_reports = 0
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
    base = next((s for s in samples if s["validations"] >= len(files)), samples[0])
    print(
        json.dumps(
            {
                "validations": count,
                "files": len(files),
                "peak_rss_mb": _status_kb("VmHWM") / 1024,
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
