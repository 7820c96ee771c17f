"""A stranger and an attacker against `facturflow serve`: slow bodies, odd methods and paths,
repeated query parameters, malformed requests, log lines; over real HTTP."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import FIXTURES, Service, documented

XML = {"Content-Type": "application/xml"}
CII = (FIXTURES / "valid" / "fr-invoice-en16931.xml").read_bytes()
BODY_TIMEOUT = 2


@pytest.fixture(scope="module")
def hostile() -> Iterator[Service]:
    # One worker, one queue place: at most 1 + 2 × 1 = 3 bodies held at once.
    running = Service(["--jobs", "1", "--queue", "1", "--body-timeout", str(BODY_TIMEOUT)])
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _connect(service: Service) -> socket.socket:
    address = urlsplit(service.url)
    return socket.create_connection((address.hostname, address.port), timeout=30)


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _trickle(service: Service, stop: threading.Event, answers: list[bytes]) -> None:
    """A slowloris body: declares 100,000 bytes and sends one every 0.2 s."""
    with _connect(service) as sock:
        sock.sendall(b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml"
                     b"\r\nContent-Length: 100000\r\n\r\n<")
        try:
            while not stop.is_set():
                sock.sendall(b" ")
                time.sleep(0.2)
        except OSError:  # the service answered and closed the connection
            pass
        answers.append(_answer(sock))


def test_a_slow_body_is_cut_off_with_408_and_does_not_block_others(hostile: Service) -> None:
    stop = threading.Event()
    answers: list[bytes] = []
    clients = [threading.Thread(target=_trickle, args=(hostile, stop, answers))
               for _ in range(3)]
    started = time.monotonic()
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        assert hostile.metric("facturflow_in_flight") == 0  # no worker holds a slow body
        # The three slow bodies fill the places; the body time limit frees them: a well-behaved
        # request is answered within a few seconds, while the slow clients are still sending.
        while True:
            answer = httpx.post(hostile.url + "/v1/validate", content=CII, headers=XML,
                                timeout=60)
            if answer.status_code == 200:
                break
            assert answer.status_code == 503
            assert time.monotonic() - started < BODY_TIMEOUT + 10, "slow bodies block others"
            time.sleep(0.2)
        assert not stop.is_set()
    finally:
        stop.set()
        for client in clients:
            client.join(60)
    assert len(answers) == 3
    for raw in answers:
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), raw[:200]
        error = json.loads(body)
        assert error["error"] == "RequestTimeout"
        assert f"within {BODY_TIMEOUT} s" in error["message"]


def test_metrics_labels_stay_bounded_whatever_the_methods_and_paths(hostile: Service) -> None:
    for number in range(5):
        httpx.request(f"M{number}", hostile.url + f"/made/up/{number}")
        httpx.request(f"X{number}", hostile.url + "/v1/validate")
    text = httpx.get(hostile.url + "/metrics").text
    labels = [line for line in text.splitlines() if line.startswith("facturflow_http_requests")]
    assert not any("M0" in line or "X0" in line or "/made/up" in line for line in labels)
    assert any('endpoint="other",method="other",status="404"' in line for line in labels)
    assert any('endpoint="/v1/validate",method="other",status="405"' in line for line in labels)


def test_a_repeated_query_parameter_is_refused(hostile: Service) -> None:
    for query in ("rules=xsd&rules=en16931", "name=a.xml&name=b.xml", "lang=en&lang=fr"):
        answer = documented(httpx.post(hostile.url + "/v1/validate?" + query, content=CII,
                                       headers=XML, timeout=60))
        assert answer.status_code == 400, query
        assert answer.json()["error"] == "BadRequest"
        assert "once" in answer.json()["message"]


def test_log_lines_stay_one_line_whatever_the_path(hostile: Service) -> None:
    httpx.post(hostile.url + "/%0d%0afake%0a%7B%22event%22%3A%22x%22%7D%E2%80%A8%C2%85more")
    deadline = time.monotonic() + 10
    while not any("fake" in line for line in hostile.lines):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for line in hostile.lines:
        if line.startswith("{"):
            assert len(line.splitlines()) == 1, repr(line)  # no U+2028, U+0085, CR or LF
            json.loads(line)
    assert not any(line.startswith('{"event": "x"') for line in hostile.lines)


def test_a_request_the_http_parser_refuses_is_answered_in_json(hostile: Service) -> None:
    for raw in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 200_000 + b"\r\n\r\n",
                b"NOT HTTP AT ALL\r\n\r\n",
                b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n"):
        with _connect(hostile) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(raw)
            head, _, body = _answer(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), head
        assert b"application/json" in head.lower()
        assert json.loads(body)["error"] == "BadRequest"


def test_a_connection_trickling_its_headers_or_silent_gets_408_and_is_closed(
    hostile: Service,
) -> None:
    silent, trickling = _connect(hostile), _connect(hostile)
    started = time.monotonic()
    trickling.sendall(b"GET /healthz HTTP/1.1\r\n")
    for _ in range(4):  # a header byte now and then: still no whole request head
        time.sleep(0.5)
        trickling.sendall(b"X")
    for sock in (silent, trickling):
        with sock:
            head, _, body = _answer(sock).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), head
            assert json.loads(body)["error"] == "RequestTimeout"
    assert time.monotonic() - started < BODY_TIMEOUT + 10
    # A connection that sends its request in time is answered, and kept alive as usual.
    with httpx.Client() as client:
        for _ in range(2):
            assert client.get(hostile.url + "/healthz").status_code == 200
            time.sleep(BODY_TIMEOUT + 0.5)  # over the head time limit, under keep-alive's 5 s
        assert client.get(hostile.url + "/healthz").status_code == 200
