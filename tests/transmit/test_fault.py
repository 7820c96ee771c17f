"""The fault test of issue 4: 200 invoices, a fifth of the requests failing in mixed ways, the
sender SIGKILLed at three random moments and restarted; at the end every valid invoice was
submitted exactly once, no invalid one was imported, and the outbox agrees with the sandbox.

Run twice (issue 11): uploading the XML as it is, and converting each XML into a Factur-X PDF,
whose bytes need not repeat from one conversion to the next, so that only the outbox and the
number check at Qonto keep an invoice from going out twice."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facturflow.transmit.outbox import Outbox, organisations
from facturflow.transmit.sandbox import FaultPlan, Sandbox, SandboxConfig

from .transmit_helpers import cii_variant

SEED = int(os.environ.get("FACTURFLOW_FAULT_SEED", "20261125"))
TOTAL, INVALID = 200, 10


def _send_process(folder: Path, state: Path, box: Sandbox,
                  upload: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **box.env(),
        # Short timeouts and backoff so that stalls and retries cost milliseconds, not seconds.
        "QONTO_TIMEOUT": "0.5",
        "QONTO_MAX_RETRIES": "10",
        "QONTO_BACKOFF_BASE": "0.02",
        "QONTO_RETRY_BUDGET": "60",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "facturflow", "send", str(folder), "--upload", upload,
         "--state", str(state), "--format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.mark.slow
@pytest.mark.parametrize("upload", ["xml", "facturx"])
def test_killed_three_times_under_faults_every_valid_invoice_goes_out_exactly_once(
    tmp_path: Path, upload: str
) -> None:
    if upload == "facturx":
        pytest.importorskip("facturflow.conversion", reason="no XML to Factur-X converter here")
    rng = random.Random(SEED)
    folder = tmp_path / "invoices"
    folder.mkdir()
    invalid_numbers = {f"FAULT-{n:04d}" for n in rng.sample(range(TOTAL), INVALID)}
    for n in range(TOTAL):
        number = f"FAULT-{n:04d}"
        (folder / f"{number}.xml").write_bytes(
            cii_variant(number, break_totals=number in invalid_numbers)
        )
    valid_numbers = {f"FAULT-{n:04d}" for n in range(TOTAL)} - invalid_numbers
    state = tmp_path / "state"
    plan = FaultPlan(rate=0.2, stall_seconds=0.8, retry_after=0.05, seed=SEED)
    config = SandboxConfig(state_dir=tmp_path / "sandbox", faults=plan)

    with Sandbox(config) as box:
        kills = 0
        # First kill on time (it lands while invoices are being validated and recorded), the
        # next two after a random number of API requests (importing or sending).
        triggers = [("seconds", rng.uniform(2.0, 6.0)), ("requests", rng.randint(10, 80)),
                    ("requests", rng.randint(10, 80))]
        for kind, threshold in triggers:
            proc = _send_process(folder, state, box, upload)
            started, base = time.monotonic(), box.requests
            while proc.poll() is None:
                progress = (time.monotonic() - started) if kind == "seconds" else (
                    box.requests - base)
                if progress >= threshold:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                    break
                time.sleep(0.01)
            proc.communicate(timeout=60)
        assert kills == 3, "the sender finished before being killed three times"

        # Restart until a run ends with nothing failed (retries exhausted on a very loaded
        # machine leave work for the next run, which is the documented remedy); bounded.
        for _ in range(3):
            final = _send_process(folder, state, box, upload)
            # (converting 200 invoices into Factur-X takes a minute or more on a busy machine)
            out, err = final.communicate(timeout=120 if upload == "xml" else 900)
            summary = json.loads(out) if out.strip() else None
            if summary is not None and "error" in summary:
                summary = None  # an error object (--format json), e.g. Qonto unreachable: rerun
            if summary is not None and summary["counts"]["failed"] == 0:
                break
        assert summary is not None, err.decode()
        assert final.returncode == 1, err.decode()  # the invalid ones make the exit code 1
        assert summary["counts"]["failed"] == 0, [
            o for o in summary["invoices"] if o["outcome"] == "failed"
        ]
        assert summary["counts"]["rejected"] == INVALID
        assert summary["counts"]["sent"] + summary["counts"]["already_sent"] == len(valid_numbers)

        counters = box.counters()
        by_number: dict[str, list[dict[str, object]]] = {}
        for invoice_id, entry in counters.items():
            by_number.setdefault(str(entry["number"]), []).append({"id": invoice_id, **entry})
        # No invalid invoice reached the sandbox at all.
        assert not set(by_number) & invalid_numbers
        # Every valid invoice: imported once, submitted to the network exactly once.
        assert set(by_number) == valid_numbers
        assert all(len(entries) == 1 for entries in by_number.values())
        assert all(entries[0]["submissions"] == 1 for entries in by_number.values())

        suffix = ".xml" if upload == "xml" else ".pdf"  # (XML inputs converted, or not)
        assert all(i["file_name"].endswith(suffix) for i in box.client_invoices())

        # The outbox agrees with the sandbox, invoice by invoice.
        (org,) = organisations(state)
        assert org == box.organization_id
        with Outbox(state, org, lock=False) as outbox:
            items = outbox.items()
        assert len(items) == len(valid_numbers)
        for item in items:
            assert item.state == "sent"
            (entry,) = by_number[str(item.invoice_number)]
            assert item.invoice_id == entry["id"]
        # Faults of every kind really happened, on about a fifth of the requests.
        assert set(plan.injected) == {"500", "502", "503", "429", "drop", "drop_after", "stall"}
        assert sum(plan.injected.values()) >= box.requests // 10
