"""The sandbox under misuse, over real loopback sockets: one server per state folder, test hooks
that need credentials and check their input, bogus Content-Length, the sliding-window rate
limit, non-ASCII credentials, private state files; and `facturflow sandbox`'s clear refusals
(busy port: exit 2; busy state folder: exit 6; malformed --api-key: exit 2)."""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from facturflow import exitcodes
from facturflow.cli import main
from facturflow.transmit import errors as E
from facturflow.transmit.qonto import UploadFile
from facturflow.transmit.sandbox import FaultPlan, Sandbox, SandboxConfig

from .transmit_helpers import cii_variant, make_client


def _raw(box: Sandbox, request: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes to the sandbox and read until it closes or answers fully."""
    port = int(box.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                break
    return data


def make_upload(number: str) -> UploadFile:
    return UploadFile(f"{number}.xml", cii_variant(number), "application/xml")


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


# -- one sandbox per state folder ------------------------------------------------------------


def test_a_second_sandbox_on_the_same_folder_is_refused_and_truncates_nothing(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "sb"
    with Sandbox(SandboxConfig(state_dir=folder)) as first, make_client(first) as c:
        (imported,) = c.import_client_invoices([make_upload("L-1")])
        journal = (folder / "state.log").read_bytes()
        assert len(journal.splitlines()) > 1
        with pytest.raises(E.SandboxBusyError, match=rf"pid {os.getpid()}\) is serving the "
                                                      rf"state folder {folder}"):
            Sandbox(SandboxConfig(state_dir=folder))
        # Before: the second one replayed, then emptied the first one's journal.
        assert (folder / "state.log").read_bytes() == journal
        assert c.get_client_invoice(imported.invoice_id).number == "L-1"
    with Sandbox(SandboxConfig(state_dir=folder)) as again, make_client(again) as c:
        assert c.get_client_invoice(imported.invoice_id).number == "L-1"


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    folder = tmp_path / "served"
    proc = subprocess.Popen([sys.executable, "-m", "facturflow", "sandbox", "--state",
                             str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("sandbox listening on http://127.0.0.1:"), line
    yield proc, folder
    proc.terminate()
    proc.wait(10)


def test_another_process_serving_the_folder_is_named(
    sandbox_process: tuple[subprocess.Popen[str], Path],
) -> None:
    proc, folder = sandbox_process
    with pytest.raises(E.SandboxBusyError, match=rf"another sandbox \(pid {proc.pid}\)"):
        Sandbox(SandboxConfig(state_dir=folder))
    result = CliRunner().invoke(main, ["sandbox", "--state", str(folder)])
    assert result.exit_code == exitcodes.STATE
    assert result.output == (f"error: another sandbox (pid {proc.pid}) is serving the state "
                             f"folder {folder}: stop it, or give this one another state "
                             "folder\n")


def test_a_state_folder_that_is_a_file_is_said_so(tmp_path: Path) -> None:
    # It said "[Errno 17] File exists: '...'".
    afile = tmp_path / "invoice.xml"
    afile.write_text("<x/>")
    result = CliRunner().invoke(main, ["sandbox", "--state", str(afile)])
    assert result.exit_code == exitcodes.STATE
    assert result.output == (f"error: cannot use the sandbox state folder {afile}: it is a "
                             "file, not a folder\n")
    assert afile.read_text() == "<x/>"


def test_a_busy_port_is_one_line_and_exit_2_and_frees_the_folder(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["sandbox", "--state", str(tmp_path / "sb"),
                                           "--port", str(port)])
        assert result.exit_code == exitcodes.USAGE
        assert result.output == (f"error: port {port} on 127.0.0.1 is already in use: choose "
                                 "another --port, or leave it out for any free one\n")
        with pytest.raises(OSError):
            Sandbox(SandboxConfig(state_dir=tmp_path / "lib", port=port)).start()
    # Neither attempt kept its state folder locked.
    Sandbox(SandboxConfig(state_dir=tmp_path / "sb")).stop()
    Sandbox(SandboxConfig(state_dir=tmp_path / "lib")).stop()


@pytest.mark.parametrize("key", ["nocolon", "login:", ":secret", "log in:secret"])
def test_a_malformed_api_key_is_a_usage_error(tmp_path: Path, key: str) -> None:
    result = CliRunner().invoke(main, ["sandbox", "--state", str(tmp_path), "--api-key", key])
    assert result.exit_code == exitcodes.USAGE
    assert "Invalid value for '--api-key': must be 'login:secret-key'" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(E.ConfigError, match="api_key must be 'login:secret-key'"):
        Sandbox(SandboxConfig(state_dir=tmp_path / "lib", api_key=key))


# -- test hooks ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/counters"), ("POST", "/clock"), ("POST", "/faults"),
    ("POST", "/supplier_invoices"), ("POST", "/oauth/code"), ("POST", "/settings"),
])
@pytest.mark.parametrize("authorization", [None, "sandbox-org:wrong", "Bearer nope"])
def test_hooks_need_the_sandbox_credentials(
    sandbox: Sandbox, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    before = sandbox.now()
    answer = httpx.request(method, sandbox.base_url + "/_sandbox" + path, headers=headers,
                           json={"advance": 86400, "next": 5, "kind": "500"})
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "unauthorized"
    assert sandbox.now() - before < 3600 and not sandbox.config.faults.forced


def test_hooks_accept_an_oauth_token_of_the_sandbox(sandbox: Sandbox) -> None:
    access, _ = sandbox.issue_tokens()
    answer = httpx.get(sandbox.base_url + "/_sandbox/counters",
                       headers={"Authorization": f"Bearer {access}"})
    assert answer.status_code == 200 and answer.json() == {"counters": {}}


@pytest.mark.parametrize(("path", "body", "detail"), [
    ("/clock", b'{"advance": 1e999}', "advance must be a number from 0 to"),
    ("/clock", b'{"advance": NaN}', "advance must be a number from 0 to"),
    ("/clock", b'{"advance": -60}', "advance must be a number from 0 to"),
    ("/clock", b'{"advance": "60"}', "advance must be a number from 0 to"),
    ("/clock", b'{"advnce": 60}', "unknown field 'advnce'"),
    ("/faults", b'{"next": 1e12}', "next must be a whole number from 0 to 10000"),
    ("/faults", b'{"next": -1}', "next must be a whole number from 0 to 10000"),
    ("/faults", b'{"next": true}', "next must be a whole number from 0 to 10000"),
    ("/faults", b'{"next": 1, "kind": "boom"}', "kind must be one of 500, 502"),
    ("/faults", b'{"next": 1, "kind": 500}', "kind must be one of 500, 502"),
    ("/faults", b'{"rate": 2}', "rate must be a number from 0 to 1"),
    ("/faults", b'{"rate": 0.5, "stall_seconds": Infinity}', "stall_seconds must be a number"),
    ("/faults", b'{"rate": 0.5, "kinds": "500"}', "kinds must be a list of fault kinds"),
    ("/faults", b'{"rate": 0.5, "kinds": []}', "kinds must name at least one"),
    ("/faults", b'{"rate": 0.5, "seed": "x"}', "seed must be a whole number or null"),
    ("/oauth/code", b'{"scopes": "organization.read"}', "scopes must be a list of known"),
    ("/oauth/code", b'{"scopes": ["root"]}', "scopes must be a list of known"),
    ("/settings", b'{"sending_status": 1}', "sending_status must be a status word"),
    ("/settings", b'{"colour": "red"}', "unknown field 'colour'"),
    ("/settings", b'[1]', "body must be a JSON object"),
])
def test_hooks_refuse_bad_input_with_a_json_400(
    sandbox: Sandbox, path: str, body: bytes, detail: str
) -> None:
    before = sandbox.now()
    answer = httpx.post(sandbox.base_url + "/_sandbox" + path, content=body,
                        headers={"Authorization": sandbox.api_key})
    assert answer.status_code == 400, answer.text  # before: 200, or a 500
    assert detail in answer.json()["errors"][0]["detail"]
    assert sandbox.now() - before < 60 and not sandbox.config.faults.forced
    assert sandbox.config.faults.rate == 0.0


def test_supplier_hook_refuses_a_path_as_file_name_and_an_empty_body(sandbox: Sandbox) -> None:
    url, key = sandbox.base_url + "/_sandbox/supplier_invoices", sandbox.api_key
    bad_name = httpx.post(url, content=cii_variant("F-1"),
                          headers={"Authorization": key, "X-File-Name": "../../x.xml"})
    empty = httpx.post(url, headers={"Authorization": key})
    assert (bad_name.status_code, empty.status_code) == (400, 400)


def test_library_hooks_check_their_input_too(sandbox: Sandbox) -> None:
    for seconds in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="advance must be"):
            sandbox.advance(seconds)
    with pytest.raises(ValueError, match="next must be"):
        sandbox.fail_next(-2, "500")
    with pytest.raises(ValueError, match="kind must be one of"):
        sandbox.fail_next(1, "boom")
    with pytest.raises(ValueError, match="rate must be"):
        FaultPlan(rate=float("nan"))
    with pytest.raises(ValueError, match="stall_seconds must be"):
        FaultPlan(stall_seconds=-1)


# -- Content-Length --------------------------------------------------------------------------


@pytest.mark.parametrize("length", [b"-5", b"abc", b"1e3", b"5, 6"])
def test_a_bogus_content_length_is_refused_at_once(sandbox: Sandbox, length: bytes) -> None:
    started = time.monotonic()
    answer = _raw(sandbox, b"POST /_sandbox/settings HTTP/1.1\r\nHost: x\r\nAuthorization: "
                  + sandbox.api_key.encode() + b"\r\nContent-Length: " + length
                  + b"\r\n\r\n{}")
    assert _status(answer) == 400 and b"invalid_content_length" in answer
    assert time.monotonic() - started < 2.0  # before: -5 read until the client hung up


def test_two_disagreeing_content_lengths_are_refused(sandbox: Sandbox) -> None:
    answer = _raw(sandbox, b"POST /_sandbox/settings HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    assert _status(answer) == 400 and b"invalid_content_length" in answer


def test_a_short_body_cannot_hold_a_handler_thread(tmp_path: Path) -> None:
    with Sandbox(SandboxConfig(state_dir=tmp_path / "sb", read_timeout=0.5)) as box:
        started = time.monotonic()
        answer = _raw(box, b"POST /v2/client_invoices/bulk HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: " + box.api_key.encode()
                      + b"\r\nContent-Length: 100\r\n\r\nonly-ten-b")
        elapsed = time.monotonic() - started
        assert _status(answer) == 400 and b"incomplete_body" in answer
        assert 0.4 <= elapsed < 3.0, elapsed  # before: waited for the 90 bytes forever
        with make_client(box) as c:
            assert c.organization()["id"] == box.organization_id


# -- the rate limit --------------------------------------------------------------------------


def test_the_rate_limit_recovers_when_traffic_falls_under_it(tmp_path: Path) -> None:
    # A short window under a long one: before, once the long window held `count` requests the
    # short one counted all of them and answered 429 until the long window emptied.
    config = SandboxConfig(state_dir=tmp_path / "sb", rate_limits=((3, 0.5), (100, 600.0)))
    with Sandbox(config) as box:
        headers = {"Authorization": box.api_key}
        url = box.base_url + "/v2/organization"
        assert [httpx.get(url, headers=headers).status_code for _ in range(4)] == [
            200, 200, 200, 429]
        time.sleep(0.6)
        assert [httpx.get(url, headers=headers).status_code for _ in range(4)] == [
            200, 200, 200, 429]
        # The long window too, without waiting ten minutes: the sandbox clock moves both.
        ip = "10.0.0.1"
        accepted = 0
        for _ in range(34):  # three per short window: 102 tries, 100 fit in the long one
            accepted += sum(box.check_rate(ip) is None for _ in range(3))
            box.advance(1)
        assert accepted == 100
        assert box.check_rate(ip) is not None  # the short window is empty, the long one full
        box.advance(601)
        assert box.check_rate(ip) is None


# -- non-ASCII credentials -------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "lögin:sécret".encode(), "lögin:sécret".encode("latin-1"), "Bearer tökén".encode(),
    b"Bearer \xff\xfe", "sandbox-org:\u00e9".encode(),
])
def test_non_ascii_credentials_get_401(sandbox: Sandbox, value: bytes) -> None:
    for path in (b"/v2/organization", b"/_sandbox/counters"):
        answer = _raw(sandbox, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
                      + value + b"\r\nConnection: close\r\n\r\n")
        assert _status(answer) == 401, answer  # before: 500 (compare_digest's TypeError)


def test_non_ascii_partner_token_gets_401(sandbox: Sandbox) -> None:
    answer = httpx.get(sandbox.base_url + "/register/registrations",
                       headers={b"Authorization": "Bearer pärtner".encode(),
                                b"Qonto-Partner-Id": sandbox.config.partner_id.encode()})
    assert answer.status_code == 401


@pytest.mark.parametrize("auth", [
    {"data": {"grant_type": "refresh_token", "refresh_token": "r",
              "client_id": "sandbox-client", "client_secret": "sécret"}},
    {"headers": {"Authorization": "Basic " + base64.b64encode(
        "sandbox-client:sécret".encode()).decode()}, "data": {"grant_type": "refresh_token"}},
    {"headers": {"Authorization": "Basic " + base64.b64encode(b"sandbox-client:\xff").decode()},
     "data": {"grant_type": "refresh_token"}},
    {"headers": {"Authorization": "Basic ***"}, "data": {"grant_type": "refresh_token"}},
])
def test_non_ascii_oauth_client_credentials_get_401(sandbox: Sandbox,
                                                    auth: dict[str, object]) -> None:
    answer = httpx.post(sandbox.base_url + "/oauth2/token", **auth)  # type: ignore[arg-type]
    assert answer.status_code == 401 and answer.json() == {"error": "invalid_client",
                                                           "trace_id": answer.json()["trace_id"]}


def test_oauth_client_secret_basic_works(sandbox: Sandbox) -> None:
    _, refresh = sandbox.issue_tokens()
    basic = base64.b64encode(f"{sandbox.client_id}:{sandbox.client_secret}".encode()).decode()
    answer = httpx.post(sandbox.base_url + "/oauth2/token",
                        headers={"Authorization": f"Basic {basic}"},
                        data={"grant_type": "refresh_token", "refresh_token": refresh})
    assert answer.status_code == 200 and answer.json()["access_token"]


def test_a_non_ascii_download_signature_gets_403(sandbox: Sandbox) -> None:
    attachment = sandbox.inject_supplier_invoice(cii_variant("D-1"), "d-1.xml")["attachment_id"]
    answer = httpx.get(f"{sandbox.base_url}/_files/{attachment}?expires=9999999999"
                       "&signature=%C3%A9")
    assert answer.status_code == 403  # before: 500


# -- private files ---------------------------------------------------------------------------


def test_state_files_are_private_from_their_creation(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        folder = tmp_path / "sb"
        with Sandbox(SandboxConfig(state_dir=folder)) as box, make_client(box) as c:
            c.import_client_invoices([make_upload("P-1")])
            box.state.snapshot()  # a rewritten snapshot and a fresh journal
    finally:
        os.umask(old)
    modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [folder, *folder.rglob("*")]}
    assert modes.pop(".") == 0o700 and modes.pop("files") == 0o700
    assert set(modes) >= {"state.json", "state.log", "sandbox.lock"}
    assert set(modes.values()) == {0o600}, modes  # before: state.log and uploads were 0666
