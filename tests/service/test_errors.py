"""Bad input gets a 4xx JSON error with the CLI's message, never a 500 or a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.hostile import builders

from .conftest import FIXTURES, REPO, Service, documented

XML = {"Content-Type": "application/xml"}
POSTS = ("/v1/validate", "/v1/detect", "/v1/read", "/v1/convert?to=cii")


def _cli_error(data: bytes, tmp_path: Path, command: str = "validate") -> str:
    """The CLI's one line for this input, without the file name it starts with."""
    path = tmp_path / "input.xml"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", command, str(path)], capture_output=True,
        text=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}, timeout=300,
    )
    assert result.returncode == 2
    line = next(x for x in (result.stdout + result.stderr).splitlines() if "error" in x.lower())
    return line.split("error: ", 1)[1].strip() if "error: " in line else line


@pytest.mark.parametrize("endpoint", POSTS)
def test_empty_body(service: Service, endpoint: str) -> None:
    for body in (b"", b"  \n"):
        answer = documented(httpx.post(service.url + endpoint, content=body, headers=XML))
        assert answer.status_code == 400
        assert answer.json() == {"error": "EmptyInputError", "message": "the input is empty",
                                 "exit_code": 2}


@pytest.mark.parametrize("endpoint", POSTS)
def test_not_an_invoice_has_the_clis_message(
    service: Service, endpoint: str, tmp_path: Path
) -> None:
    for name in ("not-an-invoice.xml", "not-well-formed.xml"):
        data = (FIXTURES / "invalid" / name).read_bytes()
        answer = documented(httpx.post(service.url + endpoint, content=data, headers=XML,
                                       timeout=300))
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["exit_code"] == 2 and body["error"] in ("NotAnInvoiceError",
                                                            "MalformedXMLError")
        if endpoint == "/v1/validate":
            assert answer.headers["x-facturflow-verdict"] == "unreadable"
            assert body["message"] in _cli_error(data, tmp_path)
        if endpoint == "/v1/detect":
            assert body["message"] in _cli_error(data, tmp_path, "detect")


def test_wrong_content_type(service: Service) -> None:
    for declared in ("application/json", "multipart/form-data; boundary=x",
                     "application/x-www-form-urlencoded"):
        answer = documented(httpx.post(service.url + "/v1/validate", content=b"<a/>",
                                       headers={"Content-Type": declared}))
        assert answer.status_code == 415
        assert answer.json()["error"] == "UnsupportedMediaType"


def _raw(url: str, head: bytes, body: bytes = b"") -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(head + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def test_too_large_refused_from_content_length_before_reading(service: Service) -> None:
    # Declares 50 MB and sends none of it: the answer comes without the body being read.
    head = (b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
            b"Content-Length: 52428800\r\nConnection: close\r\n\r\n")
    answer = _raw(service.url, head)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"InputTooLargeError"' in answer
    assert b"52428800 bytes exceeds the limit of 1048576 bytes" in answer


def test_too_large_refused_while_streaming(service: Service) -> None:
    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to judge by
        for _ in range(40):
            yield b"<a>" + b"x" * 65536 + b"</a>"

    try:
        answer = httpx.post(service.url + "/v1/validate", content=chunks(), headers=XML)
    except httpx.HTTPError:
        pytest.fail("the service should answer 413, not drop the connection")
    documented(answer)
    assert answer.status_code == 413
    assert answer.json()["message"] == "more than 1048576 bytes (the size limit)"


def test_hostile_inputs_never_reach_the_catch_all(service: Service) -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
              b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>')
    external = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                b"<x>&e;</x>")
    deep = b"<a>" * 5000 + b"</a>" * 5000
    valid = (FIXTURES / "valid" / "fr-invoice-en16931.xml").read_bytes()
    hostile = {
        "laughs": laughs, "external": external, "deep": deep,
        "truncated": valid[: len(valid) // 2], "garbage": bytes(range(256)) * 4,
        "pdf-header": b"%PDF-1.7\n" + b"\0" * 2000,
        "pdf-bomb": builders.pdf_with_attachments([(b"factur-x.xml", b"\0" * (64 << 20))],
                                                  flate=True),
        "utf16-junk": "\ufeff<?xml version='1.0' encoding='utf-16'?><x>".encode("utf-16"),
        "bad-encoding": b'<?xml version="1.0" encoding="klingon"?><x/>',
        "nul": b"<\0x/>",
    }
    before = service.metric("facturflow_internal_errors_total")
    for name, data in hostile.items():
        for endpoint in POSTS:
            for ctype in ("application/xml", "application/pdf"):
                answer = documented(httpx.post(service.url + endpoint, content=data,
                                               headers={"Content-Type": ctype}, timeout=300))
                assert 400 <= answer.status_code < 500 or answer.status_code == 200, (
                    name, endpoint, answer.status_code, answer.text)
                assert "Traceback" not in answer.text
                if answer.status_code != 200:
                    assert set(answer.json()) == {"error", "message", "exit_code"}
    assert service.metric("facturflow_internal_errors_total") == before == 0
