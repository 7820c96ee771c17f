"""`send --wait` waits for a final outcome (facturflow.lifecycle), says which, and exits
0 (approved, paid), 1 (refused, rejected, not delivered) or 5 (still pending at the timeout)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from facturflow import exitcodes, lifecycle
from facturflow.cli import main
from facturflow.transmit.outbox import Outbox
from facturflow.transmit.pipeline import SendOptions, send_invoices
from facturflow.transmit.sandbox import Sandbox

from .transmit_helpers import make_client, write_invoices


def _send(*args: str) -> Result:
    return CliRunner().invoke(main, ["send", "--upload", "xml", "--wait", "--poll-interval",
                                     "0.2", *args], catch_exceptions=False)


def test_labels_directions_and_finality() -> None:
    assert lifecycle.label(210) == "Refusée" and lifecycle.label("210", "en") == "Refused"
    assert lifecycle.label(999) == "999"
    assert [c for c in lifecycle.LifecycleCode if lifecycle.is_final(c)] == [205, 206, 210,
                                                                               211, 212, 213]
    assert not lifecycle.is_final(202) and not lifecycle.is_final(207)
    assert {c for c in lifecycle.LifecycleCode if lifecycle.is_mandatory(c)} == {200, 210, 212,
                                                                                   213}
    assert lifecycle.direction(210) == "recipient" and lifecycle.direction(212) == "issuer"
    assert lifecycle.einvoicing_status(210) == "declined"


def test_classify_takes_the_latest_event_then_the_status() -> None:
    def ev(*codes: int) -> list[dict[str, object]]:
        return [{"status_code": c, "timestamp": f"2026-01-01T00:00:0{n}Z"}
                for n, c in enumerate(codes)]

    assert lifecycle.classify(ev(200, 201, 202), "submitted").outcome == "pending"
    assert lifecycle.classify(ev(200, 202, 210), "declined").outcome == "refused"
    assert lifecycle.classify(ev(200, 213), "submission_failed").outcome == "rejected"
    assert lifecycle.classify(ev(205, 207), "approved").outcome == "pending"  # disputed again
    assert lifecycle.classify(ev(205, 212), "approved").outcome == "paid"
    assert lifecycle.classify(ev(200, 201), "not_delivered").outcome == "not_delivered"
    assert lifecycle.classify(ev(200, "209"), "approved").outcome == "pending"  # type: ignore[arg-type]
    assert lifecycle.classify([], "approved").outcome == "approved"
    assert lifecycle.classify([], None).outcome == "pending"
    refused = lifecycle.classify([{"status_code": 210, "reason": "REFUS",
                                   "reason_message": "wrong price"}], "declined")
    assert refused.negative and refused.describe() == "refused (210 Refusée): REFUS wrong price"


def test_a_refusal_after_202_is_waited_for_and_fails_the_run(box: Sandbox,
                                                              tmp_path: Path) -> None:
    # The old --wait stopped at 202 and said "sent [submitted]", exit 0; 210 comes a second later.
    box.set_outcome("R-1", "refused")
    (path,) = write_invoices(tmp_path / "in", "R-1")
    result = _send(str(path), "--state", str(tmp_path / "state"), "--timeout", "20")
    assert result.exit_code == exitcodes.INVALID, result.output
    assert "refused (210 Refusée): REFUS Refused by the recipient" in result.stdout
    assert "[submitted" not in result.stdout


@pytest.mark.parametrize(("outcome", "final", "code", "exit_code"), [
    ("approved", "approved", 205, exitcodes.OK),
    ("paid", "paid", 212, exitcodes.OK),
    ("rejected", "rejected", 213, exitcodes.INVALID),
    ("not_delivered", "not_delivered", None, exitcodes.INVALID),
])
def test_each_final_outcome_is_reported_with_its_label(
    box: Sandbox, tmp_path: Path, outcome: str, final: str, code: int | None, exit_code: int
) -> None:
    box.set_outcome("O-1", outcome)
    (path,) = write_invoices(tmp_path / "in", "O-1")
    result = _send(str(path), "--state", str(tmp_path / "state"), "--timeout", "20",
                   "--format", "json")
    assert result.exit_code == exit_code, result.output
    (invoice,) = json.loads(result.stdout)["invoices"]
    assert invoice["final"] == final
    label = lifecycle.OUTCOME_LABELS[final]
    assert invoice["final_text"].startswith(label + (f" ({code} {lifecycle.label(code)})"
                                                     if code else ""))


def test_a_wait_that_times_out_exits_5_and_names_the_pending_invoices(
    box: Sandbox, tmp_path: Path
) -> None:
    box.set_outcome("P-2", "approved")  # P-1 stays at 202: the recipient never acts
    paths = write_invoices(tmp_path / "in", "P-1", "P-2")
    result = _send(*map(str, paths), "--state", str(tmp_path / "state"), "--timeout", "3")
    assert result.exit_code == exitcodes.PENDING, result.output
    assert "P-1 sent" in result.stdout and "pending (202 Reçue par la plateforme)" in result.stdout
    assert "approved (205 Approuvée)" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith(": P-1")
    as_json = _send(*map(str, paths), "--state", str(tmp_path / "state"), "--timeout", "0",
                    "--format", "json")
    assert as_json.exit_code == exitcodes.PENDING
    body = json.loads(as_json.stdout)
    assert body["exit_code"] == exitcodes.PENDING and body["pending"] == [str(paths[0])]


def test_a_failure_wins_over_pending(box: Sandbox, tmp_path: Path) -> None:
    box.set_outcome("M-2", "refused")
    paths = write_invoices(tmp_path / "in", "M-1", "M-2")
    result = _send(*map(str, paths), "--state", str(tmp_path / "state"), "--timeout", "4")
    assert result.exit_code == exitcodes.INVALID
    assert "still pending" in result.stdout and "M-1" in result.stdout.splitlines()[-1]


def test_library_wait_classifies_each_invoice(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.set_outcome("L-1", "approved")
    sandbox.set_outcome("L-2", "refused")
    sandbox.set_outcome("L-3", "disputed")  # 207 En litige: not final
    paths = write_invoices(tmp_path / "in", "L-1", "L-2", "L-3")
    options = SendOptions(upload="xml", wait=True, poll_interval=0.2, wait_timeout=5)
    with make_client(sandbox) as client:
        summary = send_invoices(paths, client, tmp_path / "state", options)
    finals = {o.invoice_number: (o.kind, o.final) for o in summary.outcomes}
    assert finals == {"L-1": ("sent", "approved"), "L-2": ("failed", "refused"),
                      "L-3": ("sent", "pending")}
    assert summary.exit_code == exitcodes.INVALID
    assert [o.invoice_number for o in summary.pending] == ["L-3"]
    with Outbox(tmp_path / "state", sandbox.organization_id, lock=False) as outbox:
        final = {i.invoice_number: i.final for i in outbox.items()}
    assert final == {"L-1": True, "L-2": True, "L-3": False}
