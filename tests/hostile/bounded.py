"""Run one facturflow call on one file in a child process and measure its peak memory and time.

The child reports its own peak resident set size (VmHWM in /proc/self/status), which starts
afresh at exec: os.wait4's ru_maxrss would also count the pages the child shared with this
(large) test process between fork and exec. No RLIMIT_AS is set: saxonche reserves ~33 GiB of
address space at start-up and aborts under such a limit. The timeout is a hang guard, not a
speed assertion.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MEMORY_BOUND_MB = 1024
HANG_GUARD_SECONDS = 120

_CHILD = r"""
import json, sys
from facturflow.errors import FacturflowError
call, path = sys.argv[1], sys.argv[2]
try:
    if call == "detect":
        from facturflow.detection import detect
        doc = detect(path)
        out = {"outcome": "result", "syntax": doc.syntax, "warnings": list(doc.warnings)}
    elif call == "validate":
        from facturflow.validation import validate
        report = validate(path)
        out = {"outcome": "report", "error_type": report.error_type, "error": report.error,
               "valid": report.ok, "rules": sorted({f.rule for f in report.findings})}
    elif call == "read_pdf":
        from facturflow.pdf import read_pdf
        with open(path, "rb") as handle:
            parts = read_pdf(handle.read(), source=path)
        out = {"outcome": "result", "attachments": [a.name for a in parts.attachments]}
    else:
        raise SystemExit("unknown call " + call)
except FacturflowError as exc:
    out = {"outcome": "error", "error_type": type(exc).__name__, "error": exc.message}
with open("/proc/self/status") as status:
    for line in status:
        if line.startswith("VmHWM:"):
            out["peak_kb"] = int(line.split()[1])
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Bounded:
    """What the child answered, and what it cost."""

    answer: dict[str, object]
    peak_mb: float
    seconds: float
    stderr: str


def run_bounded(call: str, path: Path) -> Bounded:
    """Run `call` ('detect', 'validate' or 'read_pdf') on `path` in a fresh interpreter."""
    # Files, not pipes: a chatty child can never fill a pipe and block while we poll.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, call, str(path)],
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        deadline = started + HANG_GUARD_SECONDS
        while True:
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(child.pid, signal.SIGKILL)
                os.wait4(child.pid, 0)
                raise AssertionError(
                    f"{call} on {path.name} still running after {HANG_GUARD_SECONDS}s"
                )
            time.sleep(0.05)
        seconds = time.monotonic() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode()
        stderr = err.read().decode(errors="replace")
    assert child.returncode == 0, f"child failed ({child.returncode}): {stderr[-2000:]}"
    answer = json.loads(stdout.strip().splitlines()[-1])
    return Bounded(
        answer=answer,
        peak_mb=int(answer.pop("peak_kb")) / 1024,
        seconds=seconds,
        stderr=stderr,
    )
