"""The service's metrics in the Prometheus text exposition format (version 0.0.4).

Written by hand (a few counters, one histogram, a few gauges): prometheus_client is not a
dependency. Labels are bounded: the route's template, the method, the status code, a verdict.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in labels.items()
    )
    return "{" + inner + "}" if inner else ""


class Metrics:
    """Counters and a latency histogram, updated from the event loop and worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.internal_errors = 0
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._counts: Counter[str] = Counter()
        # Read when rendered: the worker lanes' own numbers.
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, method, status)] += 1
            buckets = self._buckets.setdefault(endpoint, [0] * len(BUCKETS))
            index = bisect_left(BUCKETS, seconds)
            if index < len(BUCKETS):
                buckets[index] += 1
            self._sums[endpoint] = self._sums.get(endpoint, 0.0) + seconds
            self._counts[endpoint] += 1

    def verdict(self, verdict: str) -> None:
        with self._lock:
            self.verdicts[verdict] += 1

    def internal_error(self) -> None:
        with self._lock:
            self.internal_errors += 1

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            out += [
                "# HELP facturflow_http_requests_total HTTP requests answered, by route, "
                "method and status.",
                "# TYPE facturflow_http_requests_total counter",
            ]
            for (endpoint, method, status), count in sorted(self.requests.items()):
                labels = _labels(endpoint=endpoint, method=method, status=str(status))
                out.append(f"facturflow_http_requests_total{labels} {count}")
            out += [
                "# HELP facturflow_http_request_duration_seconds Time to answer, by route.",
                "# TYPE facturflow_http_request_duration_seconds histogram",
            ]
            for endpoint, buckets in sorted(self._buckets.items()):
                running = 0
                for bound, count in zip(BUCKETS, buckets, strict=True):
                    running += count
                    labels = _labels(endpoint=endpoint, le=f"{bound:g}")
                    out.append(f"facturflow_http_request_duration_seconds_bucket{labels} {running}")
                labels = _labels(endpoint=endpoint, le="+Inf")
                total = self._counts[endpoint]
                out.append(f"facturflow_http_request_duration_seconds_bucket{labels} {total}")
                labels = _labels(endpoint=endpoint)
                spent = self._sums[endpoint]
                out.append(f"facturflow_http_request_duration_seconds_sum{labels} {spent:.6f}")
                out.append(f"facturflow_http_request_duration_seconds_count{labels} {total}")
            out += [
                "# HELP facturflow_verdicts_total Validation verdicts: valid, invalid, "
                "unreadable, timeout.",
                "# TYPE facturflow_verdicts_total counter",
            ]
            for verdict in ("valid", "invalid", "unreadable", "timeout"):
                out.append(
                    f"facturflow_verdicts_total{_labels(verdict=verdict)} {self.verdicts[verdict]}"
                )
            out += [
                "# HELP facturflow_internal_errors_total Answers 500: bugs, never bad input.",
                "# TYPE facturflow_internal_errors_total counter",
                f"facturflow_internal_errors_total {self.internal_errors}",
            ]
        for kind, table in (("counter", self.counters), ("gauge", self.gauges)):
            for name, (help_text, read) in sorted(table.items()):
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {read():g}"]
        return "\n".join(out) + "\n"
