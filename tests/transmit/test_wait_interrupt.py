"""Ctrl-C during `facturflow send` (a real process, a real SIGINT, a sandbox with latency):
exit 130, what finished is reported, the outbox stays consistent, and a rerun sends the rest
exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from facturflow import exitcodes
from facturflow.transmit.sandbox import FaultPlan, Sandbox, SandboxConfig

from .transmit_helpers import cii_variant

SRC = Path(__file__).resolve().parents[2] / "src"


def _env(box: Sandbox) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("QONTO_") and k != "FACTURFLOW_STATE"}
    env.update(box.env())
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env["QONTO_BACKOFF_BASE"] = "0.01"
    return env


def _send(box: Sandbox, folder: Path, state: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facturflow", "send", str(folder), "--upload", "xml",
         "--state", str(state), *extra],
        env=_env(box), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sent_rows(state: Path) -> int:
    path = state / "outbox.sqlite3"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM items WHERE state='sent'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0  # being created


def test_ctrl_c_during_send_exits_130_reports_and_a_rerun_sends_the_rest_once(
    tmp_path: Path
) -> None:
    numbers = [f"I-{n}" for n in range(8)]
    folder = tmp_path / "in"
    folder.mkdir()
    for number in numbers:
        (folder / f"{number}.xml").write_bytes(cii_variant(number))
    state = tmp_path / "state"
    latency = FaultPlan(rate=1.0, kinds=("stall",), stall_seconds=0.4, seed=1)
    with Sandbox(SandboxConfig(state_dir=tmp_path / "sandbox", faults=latency)) as box:
        proc = _send(box, folder, state, "--format", "json")
        deadline = time.monotonic() + 60
        # Interrupt once the outbox has recorded a send (not when the sandbox has counted one:
        # its answer may still be on the way, and then nothing has finished yet).
        while not _sent_rows(state):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no send recorded"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == exitcodes.INTERRUPTED, (out, err)
        assert "Traceback" not in err
        error = json.loads(out)["error"]
        assert error["code"] == "interrupted" and error["exit_code"] == 130
        done = {r["invoice_number"] for r in error["invoices"] if r["state"] == "sent"}
        submitted = {str(c["number"]) for c in box.counters().values() if c["submissions"]}
        assert done and done <= submitted and len(submitted) < len(numbers)
        assert f"{len(done)} of {len(numbers)} input(s) sent" in error["message"]

        box.set_faults(FaultPlan())
        rerun = _send(box, folder, state)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, (out, err)
        counters = box.counters().values()
        assert sorted(str(c["number"]) for c in counters) == sorted(numbers)  # imported once
        assert all(int(c["submissions"]) == 1 for c in counters)


def test_ctrl_c_in_text_mode_is_one_line_per_input_and_the_summary(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(4):
        (folder / f"J-{n}.xml").write_bytes(cii_variant(f"J-{n}"))
    latency = FaultPlan(rate=1.0, kinds=("stall",), stall_seconds=0.4, seed=1)
    with Sandbox(SandboxConfig(state_dir=tmp_path / "sandbox", faults=latency)) as box:
        proc = _send(box, folder, tmp_path / "state")
        deadline = time.monotonic() + 60
        while not any(int(c["submissions"]) for c in box.counters().values()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: interrupted (Ctrl-C): ")
    assert "sent" in err
