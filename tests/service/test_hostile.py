"""A stranger and an attacker against `facturflow serve`: slow bodies, odd methods and paths,
repeated query parameters, malformed requests, log lines; over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import FIXTURES, Service

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
