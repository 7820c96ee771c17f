"""`status`, `inbox` and `send` fail with one clear line and a documented exit code (no
traceback), as text on stderr or as a JSON object on stdout; `status` exits 1 when a listed
invoice failed or was refused."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import Result

from facturflow import exitcodes
from facturflow.transmit.errors import AuthenticationError, ServerError, TransportError
from facturflow.transmit.outbox import Outbox, OutboxCorruptError, organisations
from facturflow.transmit.sandbox import Sandbox

from .transmit_helpers import cii_variant, run, sent


@pytest.fixture
def box(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The shared `box`, with one retry only (a failing server answers quickly)."""
    monkeypatch.setenv("QONTO_MAX_RETRIES", "1")
    return box


def _one_line_error(result: Result, code: int, *words: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def _json_error(result: Result, code: int, kind: str) -> dict[str, object]:
    assert result.exit_code == code, result.output
    body = json.loads(result.stdout)["error"]
    assert body["exit_code"] == code and body["code"] == kind and body["message"]
    return dict(body)


def test_status_exits_1_when_an_invoice_was_refused(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "S-1", "refused")
    sent(box, tmp_path, "S-2", "approved")
    box.advance(60)
    result = run("status", "--refresh", "--state", state)
    assert result.exit_code == exitcodes.INVALID
    assert "refused (210 Refusée)" in result.stdout and "approved (205 Approuvée)" in result.stdout
    assert run("status", "S-2", "--state", state).exit_code == exitcodes.OK
    assert run("status", "S-1", "--state", state).exit_code == exitcodes.INVALID
    (item,) = json.loads(run("status", "S-1", "--state", state, "--format", "json").stdout)
    assert item["outcome"] == "refused"


def test_status_exits_1_when_an_invoice_failed_to_send(box: Sandbox, tmp_path: Path) -> None:
    box.set_settings(sending_status="disabled")
    source = tmp_path / "F-1.xml"
    source.write_bytes(cii_variant("F-1"))
    state = str(tmp_path / "state")
    assert run("send", str(source), "--upload", "xml", "--state", state).exit_code == 1
    result = run("status", "--state", state)
    assert result.exit_code == exitcodes.INVALID and "failed" in result.stdout


def test_refresh_with_a_wrong_key_is_a_configuration_error(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sent(box, tmp_path, "A-1")
    login = box.api_key.split(":")[0]
    monkeypatch.setenv("QONTO_API_KEY", f"{login}:wrong-secret")
    _one_line_error(run("status", "--refresh", "--state", state), exitcodes.CONFIG)
    body = _json_error(run("status", "--refresh", "--state", state, "--format", "json"),
                       exitcodes.CONFIG, "authentication")
    assert body["type"] == AuthenticationError.__name__
    assert "wrong-secret" not in json.dumps(body)


def test_malformed_settings_are_a_configuration_error_not_usage(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sent(box, tmp_path, "A-2")
    monkeypatch.setenv("QONTO_API_KEY", "no-colon-here")
    _one_line_error(run("status", "--refresh", "--state", state), exitcodes.CONFIG,
                    "QONTO_API_KEY")
    _one_line_error(run("inbox", "--state", state), exitcodes.CONFIG, "QONTO_API_KEY")
    _json_error(run("send", str(tmp_path / "A-2.xml"), "--state", state, "--format", "json"),
                exitcodes.CONFIG, "config")


def test_refresh_with_qonto_unreachable_is_a_service_error(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sent(box, tmp_path, "U-1")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("QONTO_BASE_URL", f"http://127.0.0.1:{port}")
    _one_line_error(run("status", "--refresh", "--state", state), exitcodes.SERVICE)
    body = _json_error(run("status", "--refresh", "--state", state, "--format", "json"),
                       exitcodes.SERVICE, "unreachable")
    assert body["type"] == TransportError.__name__
    _one_line_error(run("inbox", "--state", state), exitcodes.SERVICE)
    _json_error(run("inbox", "--state", state, "--format", "json"), exitcodes.SERVICE,
                "unreachable")


def test_refresh_on_server_errors_is_a_service_error(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "E-1")
    box.fail_next(50, "500")
    body = _json_error(run("status", "--refresh", "--state", state, "--format", "json"),
                       exitcodes.SERVICE, "server_error")
    assert body["type"] == ServerError.__name__
    box.config.faults.forced.clear()
    box.fail_next(50, "503")
    _one_line_error(run("status", "--refresh", "--state", state), exitcodes.SERVICE)


def test_refresh_of_an_invoice_qonto_does_not_know(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "N-1")
    box.state.data["client_invoices"].clear()  # deleted at Qonto (or another environment)
    _one_line_error(run("status", "--refresh", "--state", state), exitcodes.CONFIG,
                    "unknown to Qonto")


def test_a_corrupt_outbox_is_one_line_and_exit_6(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "C-1")
    db = tmp_path / "state" / "outbox.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    _one_line_error(run("status", "--state", state), exitcodes.STATE, "corrupt",
                    "outbox check")
    _json_error(run("status", "--state", state, "--format", "json"), exitcodes.STATE,
                "state_corrupt")
    _one_line_error(run("send", str(tmp_path / "C-1.xml"), "--upload", "xml", "--state", state),
                    exitcodes.STATE, "corrupt")
    with pytest.raises(OutboxCorruptError):
        organisations(tmp_path / "state")
    with pytest.raises(OutboxCorruptError):
        Outbox(tmp_path / "state", "org")


def test_a_truncated_outbox_is_one_line_and_exit_6(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "T-1")
    for n in range(2, 40):  # enough rows for several pages
        sent(box, tmp_path, f"T-{n}")
    db = tmp_path / "state" / "outbox.sqlite3"
    with Outbox(tmp_path / "state", box.organization_id) as outbox:
        outbox.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    assert len(data) > 4 * 4096
    db.write_bytes(data[: len(data) // 2])
    result = run("status", "--state", state)
    _one_line_error(result, exitcodes.STATE)


def test_a_locked_outbox_is_exit_6(box: Sandbox, tmp_path: Path) -> None:
    state = sent(box, tmp_path, "K-1")
    with Outbox(tmp_path / "state", box.organization_id):
        result = run("send", str(tmp_path / "K-1.xml"), "--upload", "xml", "--state", state)
    _one_line_error(result, exitcodes.STATE, "another facturflow process")


def test_a_state_folder_that_is_a_file_is_exit_6(box: Sandbox, tmp_path: Path) -> None:
    source = tmp_path / "X-1.xml"
    source.write_bytes(cii_variant("X-1"))
    state = tmp_path / "state"
    state.write_text("not a folder")
    result = run("send", str(source), "--upload", "xml", "--state", str(state))
    _one_line_error(result, exitcodes.STATE, "cannot write the state folder")


def test_inbox_into_an_unusable_folder_is_a_usage_error(box: Sandbox, tmp_path: Path) -> None:
    box.inject_supplier_invoice(cii_variant("SUP-1"), "sup-1.xml")
    target = tmp_path / "not-a-folder"
    target.write_text("a file")
    result = run("inbox", "--download", str(target), "--state", str(tmp_path / "state"))
    _one_line_error(result, exitcodes.USAGE, str(target))
    _json_error(run("inbox", "--download", str(target), "--state", str(tmp_path / "state"),
                    "--format", "json"), exitcodes.USAGE, "os_error")


@pytest.mark.parametrize("rules", ["", ",", "bogus", "XSD"])
def test_send_with_an_empty_or_unknown_rule_selection_is_a_usage_error(
    box: Sandbox, tmp_path: Path, rules: str
) -> None:
    source = tmp_path / "R-1.xml"
    source.write_bytes(cii_variant("R-1"))
    state = str(tmp_path / "state")
    _one_line_error(run("send", str(source), "--rules", rules, "--state", state),
                    exitcodes.USAGE, "unknown rule set" if rules.strip(",") else "rule")
    _json_error(run("send", str(source), "--rules", rules, "--state", state, "--format", "json"),
                exitcodes.USAGE, "usage")
    assert not any(int(c["submissions"]) for c in box.counters().values())
    from facturflow.errors import UnknownRuleSetError
    from facturflow.transmit.pipeline import SendOptions

    with pytest.raises(UnknownRuleSetError):
        SendOptions(rules=rules)
