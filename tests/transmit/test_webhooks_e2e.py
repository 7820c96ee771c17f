"""The webhook round trip over real sockets: the sandbox emits signed events on each lifecycle
change (with retries), `facturflow webhook serve` (and its library class) verifies them,
re-fetches the invoice, updates the outbox, and `status` shows the label."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from facturflow import exitcodes
from facturflow.transmit.outbox import Outbox, organisations
from facturflow.transmit.sandbox import Sandbox, SandboxConfig
from facturflow.transmit.webhook_cli import ReceiverConfig, WebhookReceiver
from facturflow.webhooks import sign

from .transmit_helpers import QONTO_VARS, cii_variant, make_client, run

SECRET = "whsec_e2e_secret"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    """Quick webhook retries: the tests wait for them."""
    return SandboxConfig(state_dir=tmp_path / "sandbox", webhook_backoff=0.05)


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def send(box: Sandbox, tmp_path: Path, number: str, state: Path) -> None:
    box.set_outcome(number, "approved")
    source = tmp_path / f"{number}.xml"
    source.write_bytes(cii_variant(number))
    result = run("send", str(source), "--upload", "xml", "--state", str(state))
    assert result.exit_code == 0, result.output


def latest_code(state: Path) -> int | None:
    for org in organisations(state):
        with Outbox(state, org, lock=False) as outbox:
            for item in outbox.items():
                if item.latest_event:
                    return int(item.latest_event["status_code"])
    return None


def receiver(box: Sandbox, state: Path, **kw: Any) -> WebhookReceiver:
    return WebhookReceiver(ReceiverConfig(secret=SECRET, state_dir=state,
                                          client=make_client(box), **kw))


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _all_answered(box: Sandbox) -> bool:
    deliveries = box.webhook_deliveries()
    last = {d["event_id"]: d["status"] for d in deliveries}
    approved = any(d["einvoicing_status"] == "approved" and d["status"] == 200
                   for d in deliveries)
    return approved and set(last.values()) == {200}


def test_send_then_webhooks_update_the_outbox_and_status_shows_the_label(
        box: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    lines: list[str] = []
    with receiver(box, state, forward=lines.append) as r:
        box.set_webhook(r.url, SECRET)
        send(box, tmp_path, "WH-1", state)
        box.advance(10)  # the sandbox plays 201, 202, 205: each change is a webhook
        until(lambda: any('"status_code": 205' in line for line in lines))
        until(lambda: latest_code(state) == 205)
        # The outbox may show 205 through an earlier event's re-fetch while the 205 event's
        # own delivery is still on its way: wait until every event's last delivery is answered.
        until(lambda: _all_answered(box))
    # status reads the outbox only (no --refresh): what it shows came through the webhooks
    text = run("status", "--state", str(state)).stdout
    assert "205 Approuvée" in text and "approved (205 Approuvée)" in text, text
    deliveries = box.webhook_deliveries()
    # each event ends delivered (an early one may get a 503 while `send` holds the outbox)
    last = {d["event_id"]: d["status"] for d in deliveries}
    assert last and set(last.values()) == {200}, deliveries
    events = [json.loads(line) for line in lines]
    assert events[-1]["invoice"]["lifecycle_events"][-1]["status_code"] == 205
    assert events[-1]["invoice"]["status_text"].startswith("205 Approuvée")
    assert all(e["event"]["type"] == "v1/client-invoices" for e in events)
    assert len({e["event"]["id"] for e in events}) == len(events)


def test_the_sandbox_retries_until_the_receiver_can_record(box: Sandbox,
                                                           tmp_path: Path) -> None:
    state = tmp_path / "state"
    send(box, tmp_path, "WH-2", state)
    (org,) = organisations(state)
    with receiver(box, state) as r:
        with Outbox(state, org):  # as a running `send` would: the receiver answers 503
            box.set_webhook(r.url, SECRET)
            until(lambda: any(d["status"] == 503 for d in box.webhook_deliveries()))
        box.advance(10)
        until(lambda: latest_code(state) == 205)
        until(lambda: any(d["status"] == 200 and d["einvoicing_status"] == "approved"
                          for d in box.webhook_deliveries()))
    deliveries = box.webhook_deliveries()
    first = deliveries[0]["event_id"]
    tries = [d for d in deliveries if d["event_id"] == first]
    assert [d["status"] for d in tries][-1] == 200 and tries[-1]["attempt"] >= 2


def test_a_duplicate_is_answered_200_without_a_second_effect(box: Sandbox,
                                                             tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "exec.log"
    send(box, tmp_path, "WH-3", state)
    invoice_id = box.client_invoices()[0]["id"]
    script = f"import sys; open({str(log)!r}, 'a').write(sys.stdin.read())"
    body = json.dumps({"id": "evt-dup", "type": "v1/client-invoices", "event": "updated",
                       "organization_id": box.organization_id,
                       "data": {"id": invoice_id, "einvoicing_status": "submitted"}}).encode()
    with receiver(box, state, exec_argv=[sys.executable, "-c", script]) as r:
        headers = {"Qonto-SHA256-Signature": sign(body, SECRET),
                   "Content-Type": "application/json"}
        assert post(r.url, body, headers)[1]["status"] == "recorded"
        assert post(r.url, body, headers) == (200, {"status": "duplicate",
                                                    "event_id": "evt-dup"})
    assert len(log.read_text().splitlines()) == 1
    # the id is remembered on disk: a new receiver on the same state says duplicate too
    with receiver(box, state) as again:
        headers["Qonto-SHA256-Signature"] = sign(body, SECRET)
        assert post(again.url, body, headers)[1]["status"] == "duplicate"


def test_bad_signature_stale_oversized_and_not_an_event_are_refused(box: Sandbox,
                                                                     tmp_path: Path) -> None:
    body = json.dumps({"id": "evt-x", "type": "other", "data": {}}).encode()
    with receiver(box, tmp_path / "state", max_body=1000) as r:
        status, answer = post(r.url, body, {"Qonto-SHA256-Signature": sign(body, "wrong")})
        assert status == 401 and answer["error"]["code"] == "bad_signature"
        status, answer = post(r.url, body, {"Qonto-SHA256-Signature": sign(body, SECRET,
                                                                           int(time.time()) - 900)})
        assert status == 401 and "tolerance" in answer["error"]["message"]
        assert post(r.url, body, {})[0] == 401
        big = b"x" * 2000
        assert post(r.url, big, {"Qonto-SHA256-Signature": sign(big, SECRET)})[0] == 413
        junk = b"not json"
        assert post(r.url, junk, {"Qonto-SHA256-Signature": sign(junk, SECRET)})[0] == 400
        assert post(r.url, body, {"Qonto-SHA256-Signature": sign(body, SECRET)})[0] == 200
        assert r.counts["recorded"] == 1


def _serve(box: Sandbox, state: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTO_")}
    env.update(box.env(), PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]),
               QONTO_BACKOFF_BASE="0.01", WH_SECRET=SECRET)
    return subprocess.Popen(
        [sys.executable, "-m", "facturflow", "webhook", "serve", "--port", "0",
         "--secret-env", "WH_SECRET", "--state", str(state), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_cli_receiver_end_to_end(box: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _serve(box, state, "--forward-jsonl")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        first = proc.stderr.readline()
        assert "webhook receiver listening on http://127.0.0.1:" in first, first
        url = first.split("listening on ")[1].split()[0]
        box.set_webhook(url, SECRET)
        send(box, tmp_path, "WH-4", state)
        box.advance(10)
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["invoice"]["lifecycle_events"][-1]["status_code"] != 205:
            seen.append(json.loads(proc.stdout.readline()))
        assert seen[-1]["outbox"] == [str((tmp_path / "WH-4.xml").resolve())]
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "event(s) recorded" in err and "Traceback" not in err
    result = run("status", "WH-4", "--state", str(state))
    assert "205 Approuvée" in result.stdout and result.exit_code == 0


def test_the_cli_refuses_unsafe_or_incomplete_settings(box: Sandbox, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    state = str(tmp_path / "state")
    monkeypatch.delenv("WH_SECRET", raising=False)
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--state", state)
    assert result.exit_code == exitcodes.CONFIG and "WH_SECRET" in result.stderr
    monkeypatch.setenv("WH_SECRET", SECRET)
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--host", "0.0.0.0", "--state", state)
    assert result.exit_code == exitcodes.USAGE and "--allow-remote" in result.stderr
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--exec", "'unclosed", "--state", state)
    assert result.exit_code == exitcodes.USAGE
    monkeypatch.delenv("QONTO_API_KEY")
    monkeypatch.delenv("QONTO_BASE_URL")
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--state", state)
    assert result.exit_code == exitcodes.CONFIG and "no Qonto configuration" in result.stderr


def test_sandbox_cli_needs_a_secret_for_webhooks(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    result = run("sandbox", "--state", str(tmp_path / "sb"), "--webhook-url",
                 "http://127.0.0.1:9/", "--webhook-secret-env", "NOPE")
    assert result.exit_code == exitcodes.USAGE and "--webhook-secret-env" in result.stderr


@pytest.mark.parametrize("script", ["import time; time.sleep(10)", "raise SystemExit(3)"])
def test_a_failing_or_slow_exec_is_answered_503_and_not_recorded(box: Sandbox, tmp_path: Path,
                                                                   script: str) -> None:
    body = json.dumps({"id": "evt-exec", "type": "other", "data": {}}).encode()
    with receiver(box, tmp_path / "state", exec_argv=[sys.executable, "-c", script],
                  exec_timeout=0.5) as r:
        started = time.monotonic()
        status, answer = post(r.url, body, {"Qonto-SHA256-Signature": sign(body, SECRET)})
        assert status == 503 and answer["error"]["code"] == "retry_later", answer
        assert time.monotonic() - started < 8
        assert not r.store.seen("evt-exec")  # the sender's retry runs it again


def test_the_sandbox_cli_emits_webhooks_to_the_receiver(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from facturflow.transmit.qonto import QontoClient, QontoConfig

    for name in QONTO_VARS:
        monkeypatch.delenv(name, raising=False)
    key = "demo:0123456789abcdef0123456789abcdef"
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTO_")}
    env.update(PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]),
               WH_SECRET=SECRET)
    lines: list[str] = []
    with WebhookReceiver(ReceiverConfig(secret=SECRET, state_dir=state,
                                        forward=lines.append)) as r:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facturflow", "sandbox", "--state", str(tmp_path / "sb"),
             "--api-key", key, "--outcome", "approved", "--webhook-url", r.url,
             "--webhook-secret-env", "WH_SECRET"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            base = proc.stdout.readline().split("listening on ")[1].split()[0]
            client = QontoClient(QontoConfig(base_url=base, api_key=key, backoff_base=0.01))
            r.config.client = client
            monkeypatch.setenv("QONTO_BASE_URL", base)
            monkeypatch.setenv("QONTO_API_KEY", key)
            source = tmp_path / "SB-1.xml"
            source.write_bytes(cii_variant("SB-1"))
            result = run("send", str(source), "--upload", "xml", "--state", str(state))
            assert result.exit_code == 0, result.output
            until(lambda: any('"status_code": 205' in line for line in lines))
            client.close()
        finally:
            proc.terminate()
            proc.communicate(timeout=20)
    assert "205 Approuvée" in run("status", "SB-1", "--state", str(state)).stdout


def test_the_cli_receiver_refuses_bad_credentials_and_an_unusable_state(
        box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_SECRET", SECRET)
    monkeypatch.setenv("QONTO_API_KEY", "someone:0123456789abcdef0123456789abcdef")
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--state", str(tmp_path / "state"))
    assert result.exit_code == exitcodes.CONFIG, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    monkeypatch.setenv("QONTO_API_KEY", box.api_key)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--state", str(blocker / "state"))
    assert result.exit_code == exitcodes.STATE, result.output
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output


# --- the README walked by a stranger: a malformed setting, ::1, an id that is not one -------


def test_a_malformed_qonto_setting_is_a_configuration_error(
        box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It was click's usage error (exit 2, with the usage text), where every other command
    # says exit 3 "configuration: ..." for the same setting.
    monkeypatch.setenv("WH_SECRET", SECRET)
    monkeypatch.setenv("QONTO_BASE_URL", "not-a-url")
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--state", str(tmp_path))
    assert result.exit_code == exitcodes.CONFIG, result.output
    assert result.stderr.splitlines() == [
        "error: configuration: QONTO_BASE_URL must be an https:// URL (plain http only to "
        "loopback): 'not-a-url'"]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_the_ipv6_loopback_is_served(box: Sandbox, tmp_path: Path) -> None:
    # ::1 passed the loopback check, then failed: "Address family for hostname not supported".
    body = json.dumps({"id": "evt-6", "type": "other", "data": {}}).encode()
    with receiver(box, tmp_path, host="::1") as r:
        assert r.url.startswith("http://[::1]:")
        status, answer = post(r.url, body, {"Qonto-SHA256-Signature": sign(body, SECRET)})
        assert (status, answer["status"]) == (200, "recorded")
    proc = _serve(box, tmp_path, "--host", "::1")
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "webhook receiver listening on http://[::1]:" in first, first
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_an_event_naming_no_qonto_id_is_refused_400_not_500(
        box: Sandbox, tmp_path: Path) -> None:
    # Signed, but its invoice id holds path characters: answered 500 "internal: ValueError",
    # which a sender retries for ever; no retry makes it an invoice.
    body = json.dumps({"id": "evt-path", "type": "v1/client-invoices", "event": "updated",
                       "data": {"id": "../../etc/passwd"}}).encode()
    with receiver(box, tmp_path) as r:
        status, answer = post(r.url, body, {"Qonto-SHA256-Signature": sign(body, SECRET)})
        assert status == 400 and answer["error"]["code"] == "not_an_event", answer
        assert "'../../etc/passwd' is not a Qonto id" in answer["error"]["message"]
        assert r.counts == {"recorded": 0, "duplicate": 0, "refused": 1, "failed": 0}
        assert not r.store.seen("evt-path")



def test_an_exec_program_that_does_not_exist_is_refused_at_start(
        box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's `--exec "./on-event --queue invoices"` without ./on-event: it started, then
    # answered every event 503 for ever.
    monkeypatch.setenv("WH_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    result = run("webhook", "serve", "--port", "0", "--secret-env", "WH_SECRET",
                 "--exec", "./on-event --queue invoices", "--state", str(tmp_path / "state"))
    assert result.exit_code == exitcodes.USAGE, result.output
    assert "--exec ./on-event: no such program (or not executable)" in result.stderr
    assert not (tmp_path / "state").exists()
