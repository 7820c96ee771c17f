"""The send stage over the outbox: commit-before-network, crash repair, batch refusals, --wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facturflow.transmit.outbox import Outbox
from facturflow.transmit.pipeline import SendOptions, send_invoices
from facturflow.transmit.qonto import QontoClient
from facturflow.transmit.sandbox import Sandbox, SandboxConfig

from .transmit_helpers import cii_variant, make_client, write_invoices

XML = SendOptions(upload="xml")


def _states(state: Path, org: str) -> dict[str, str]:
    with Outbox(state, org, lock=False) as outbox:  # a second connection sees only commits
        return {str(i.invoice_number): i.state for i in outbox.items()}


def test_each_transition_is_committed_before_its_network_step(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, seen = tmp_path / "state", []
    org = sandbox.organization_id
    real_import, real_send = QontoClient.import_client_invoices, QontoClient.send_by_einvoice

    def spy_import(self: QontoClient, files: Any) -> Any:
        seen.append(("import", _states(state, org)))
        return real_import(self, files)

    def spy_send(self: QontoClient, invoice_id: str) -> None:
        seen.append(("send", _states(state, org)))
        real_send(self, invoice_id)

    monkeypatch.setattr(QontoClient, "import_client_invoices", spy_import)
    monkeypatch.setattr(QontoClient, "send_by_einvoice", spy_send)
    with make_client(sandbox) as client:
        summary = send_invoices(write_invoices(tmp_path / "in", "T-1", "T-2"), client, state, XML)
    assert summary.ok
    assert seen == [
        ("import", {"T-1": "importing", "T-2": "importing"}),
        ("send", {"T-1": "sending", "T-2": "imported"}),
        ("send", {"T-1": "sent", "T-2": "sending"}),
    ]


def test_a_crash_after_send_before_its_commit_is_repaired_without_resubmission(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, state = write_invoices(tmp_path / "in", "K-1"), tmp_path / "state"

    def crash(self: Outbox, upload_sha: str) -> None:
        raise KeyboardInterrupt("killed between the 204 and its commit")

    with monkeypatch.context() as patch:
        patch.setattr(Outbox, "mark_sent", crash)
        with make_client(sandbox) as client, pytest.raises(KeyboardInterrupt):
            send_invoices(paths, client, state, XML)
    assert _states(state, sandbox.organization_id) == {"K-1": "sending"}
    with make_client(sandbox) as client:
        summary = send_invoices(paths, client, state, XML)
    assert [o.kind for o in summary.outcomes] == ["sent"]
    (counter,) = sandbox.counters().values()
    assert (counter["calls"], counter["submissions"]) == (2, 1)
    with make_client(sandbox) as client:
        again = send_invoices(paths, client, state, XML)
    assert [o.kind for o in again.outcomes] == ["already_sent"]
    assert next(iter(sandbox.counters().values()))["calls"] == 2


def test_one_file_refused_by_the_import_does_not_block_its_batch(tmp_path: Path) -> None:
    (small,) = write_invoices(tmp_path / "in", "B-1")
    big = tmp_path / "in" / "big.xml"
    padded = cii_variant("B-2").replace(b"?>", b"?>\n<!-- " + b"pad " * 500 + b"-->", 1)
    big.write_bytes(padded)
    config = SandboxConfig(state_dir=tmp_path / "sb", max_file_bytes=small.stat().st_size)
    with Sandbox(config) as box, make_client(box) as client:
        summary = send_invoices([big, small], client, tmp_path / "state", XML)
        kinds = {Path(o.path).name: (o.kind, o.reason) for o in summary.outcomes}
        assert kinds["B-1.xml"][0] == "sent"
        assert kinds["big.xml"][0] == "failed" and "file_too_large" in str(kinds["big.xml"][1])
        assert [i["number"] for i in box.client_invoices()] == ["B-1"]


def test_wait_follows_the_lifecycle_and_reports_a_failed_submission(sandbox: Sandbox,
                                                                     tmp_path: Path) -> None:
    # --wait stops at a final outcome (205 approved, 213 rejected...), not at 202.
    sandbox.set_outcome("W-1", "approved")
    sandbox.set_outcome("W-2", "failed")
    paths = write_invoices(tmp_path / "in", "W-1", "W-2")
    options = SendOptions(upload="xml", wait=True, poll_interval=0.1, wait_timeout=30)
    with make_client(sandbox) as client:
        summary = send_invoices(paths, client, tmp_path / "state", options)
    by_number = {o.invoice_number: o for o in summary.outcomes}
    assert by_number["W-1"].kind == "sent" and by_number["W-1"].einvoicing_status == "approved"
    assert by_number["W-1"].final == "approved"
    assert by_number["W-2"].kind == "failed"
    assert by_number["W-2"].einvoicing_status == "submission_failed"
    assert "Rejected by the platform" in str(by_number["W-2"].reason)
    assert not summary.ok
    with Outbox(tmp_path / "state", sandbox.organization_id, lock=False) as outbox:
        events = {i.invoice_number: [e["status_code"] for e in i.events] for i in outbox.items()}
    assert events == {"W-1": [200, 201, 202, 205], "W-2": [200, 213]}
