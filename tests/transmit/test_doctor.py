"""`facturflow doctor` on a healthy and on broken configurations (sandbox over real sockets):
one line per check, ok or what to do, and exit 0 / 3 / 4."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from facturflow import exitcodes
from facturflow.cli import main
from facturflow.transmit.qonto import AsyncQontoClient, QontoConfig
from facturflow.transmit.sandbox import Sandbox

from .transmit_helpers import make_client


@pytest.fixture
def box(box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The shared `box`, with a state folder of the test's own."""
    monkeypatch.setenv("FACTURFLOW_STATE", str(tmp_path / "state"))
    return box


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", *args], catch_exceptions=False)


def lines(result: Result) -> list[str]:
    return result.stdout.strip().splitlines()


def failing(result: Result) -> list[str]:
    return [line for line in lines(result) if line.startswith("FAIL")]


def test_a_healthy_configuration_is_all_ok(box: Sandbox) -> None:
    result = run()
    assert result.exit_code == 0, result.output
    names = [line.split(":", 1)[0].split(None, 1)[1] for line in lines(result)]
    assert names == ["credentials", "organisation", "sending", "receiving", "clock"]
    assert all(line.startswith("ok ") for line in lines(result))
    assert "Sandbox SAS" in result.stdout
    data = json.loads(run("--format", "json").stdout)
    assert data["ok"] is True and data["exit_code"] == 0 and len(data["checks"]) == 5


def test_a_wrong_key_is_exit_3_with_what_to_do(box: Sandbox,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QONTO_API_KEY", box.api_key.split(":")[0] + ":wrong-secret")
    result = run()
    assert result.exit_code == exitcodes.CONFIG
    (line,) = failing(result)
    assert line.startswith("FAIL  organisation: Qonto refused the credentials")
    assert "QONTO_API_KEY" in line
    assert "wrong-secret" not in result.output  # a secret is never printed


def test_no_credentials_is_exit_3(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QONTO_API_KEY")
    result = run()
    assert result.exit_code == exitcodes.CONFIG
    assert lines(result) == [line for line in lines(result) if "credentials" in line]
    assert "set QONTO_API_KEY" in result.stdout


def test_a_malformed_setting_is_one_line_exit_3(box: Sandbox,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QONTO_TIMEOUT", "soon")
    result = run()
    assert result.exit_code == exitcodes.CONFIG
    assert len(lines(result)) == 1 and "QONTO_TIMEOUT" in result.stdout


def test_sending_disabled_is_one_line_saying_what_to_do(box: Sandbox) -> None:
    box.set_settings(sending_status="disabled")
    result = run()
    assert result.exit_code == exitcodes.CONFIG
    (line,) = failing(result)
    assert line.startswith("FAIL  sending: e-invoice sending is 'disabled': enable")
    assert sum(line.startswith("ok") for line in lines(result)) == 4


@pytest.mark.parametrize(("status", "needle"), [("pending_creation", "wait"),
                                                 ("disabled", "enable it")])
def test_receiving_not_enabled_is_exit_3(box: Sandbox, status: str, needle: str) -> None:
    box.set_settings(receiving_status=status)
    result = run()
    assert result.exit_code == exitcodes.CONFIG
    (line,) = failing(result)
    assert line.startswith("FAIL  receiving") and needle in line


def test_clock_skew_is_seen_from_the_date_header(box: Sandbox) -> None:
    box.advance(600)  # the sandbox's Date header follows its clock: ten minutes ahead of ours
    result = run()
    assert result.exit_code == exitcodes.CONFIG
    (line,) = failing(result)
    assert line.startswith("FAIL  clock: local clock is") and "behind" in line
    assert run("--max-skew", "3600").exit_code == 0


def test_recipient_reachability(box: Sandbox) -> None:
    box.add_client("Reachable SA", "111111111", reachable=True)
    box.add_client("Offline SARL", "222222222", reachable=False)
    ok = run("--recipient", "111 111 111")
    assert ok.exit_code == 0, ok.output
    assert lines(ok)[-1].startswith("ok    recipient 111111111: Reachable SA")
    offline = run("--recipient", "222222222")
    assert offline.exit_code == exitcodes.SERVICE
    assert failing(offline) == [lines(offline)[-1]] and "not reachable" in lines(offline)[-1]
    unknown = run("--recipient", "333333333")
    assert unknown.exit_code == exitcodes.SERVICE and "no Qonto client" in unknown.stdout
    bad = CliRunner().invoke(main, ["doctor", "--recipient", "12"])
    assert bad.exit_code == exitcodes.USAGE and "not a SIREN" in bad.output


def test_qonto_unreachable_is_exit_4(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("QONTO_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("QONTO_MAX_RETRIES", "0")
    result = run()
    assert result.exit_code == exitcodes.SERVICE
    (line,) = failing(result)
    assert line.startswith("FAIL  organisation: Qonto unreachable")


def test_library_clock_and_clients_sync_and_async(box: Sandbox) -> None:
    box.add_client("ACME", "444444444", reachable=True)
    with make_client(box) as client:
        clock = client.server_clock()
        assert clock.skew is not None and abs(clock.skew) < 5
        assert [c["name"] for c in client.find_clients("444444444")] == ["ACME"]

    async def check() -> tuple[Any, list[dict[str, Any]]]:
        async with AsyncQontoClient(QontoConfig(base_url=box.base_url,
                                                api_key=box.api_key)) as c:
            return await c.server_clock(), await c.find_clients("444444444")

    box.advance(120)
    clock, found = asyncio.run(check())
    assert clock.skew is not None and -125 < clock.skew < -115
    assert len(found) == 1


def test_a_missing_staging_token_is_named(box: Sandbox) -> None:
    box.config.staging_token = "staging-secret"  # now every request needs the header
    result = run()
    assert result.exit_code == exitcodes.CONFIG
    (line,) = failing(result)
    assert line.startswith("FAIL  organisation") and "QONTO_STAGING_TOKEN" in line


def test_an_unreachable_qonto_is_diagnosed_quickly(box: Sandbox,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    box.fail_next(20, "503")  # failing, with the default retries of the sending commands
    monkeypatch.delenv("QONTO_BACKOFF_BASE")
    started = time.monotonic()
    result = run()
    assert result.exit_code == exitcodes.SERVICE and time.monotonic() - started < 10
    (line,) = failing(result)
    assert line.startswith("FAIL  organisation: Qonto answered with an error")
