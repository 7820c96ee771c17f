"""The time limit, the queue limit and graceful shutdown, on a service of one worker."""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from .conftest import FIXTURES, Service, documented, slow_pack

XML = {"Content-Type": "application/xml"}
CII = (FIXTURES / "valid" / "fr-invoice-en16931.xml").read_bytes()
UBL = (FIXTURES / "valid" / "fr-invoice-ubl-en16931.xml").read_bytes()  # the packs are CII's


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("packs")
    stuck = slow_pack(folder, "stuck", 300_000)  # never finishes in a test's time
    running = Service(["--jobs", "1", "--queue", "1", "--request-timeout", "5",
                       "--rule-pack", str(stuck)])
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _wait_for(service: Service, metric: str, value: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while service.metric(metric) < value:
        assert time.monotonic() < deadline, f"{metric} never reached {value}"
        time.sleep(0.05)


def test_over_the_time_limit_is_504_and_the_worker_replaced(limited: Service) -> None:
    restarts = limited.metric("facturflow_worker_restarts_total")
    started = time.monotonic()
    answer = documented(httpx.post(limited.url + "/v1/validate?rules=xsd", content=CII,
                                   headers=XML, timeout=120))
    assert answer.status_code == 504
    body = answer.json()
    assert body == {"error": "Timeout", "exit_code": 1,
                    "message": "validation did not finish within 5 s and was stopped"}
    assert answer.headers["x-facturflow-verdict"] == "timeout"
    assert time.monotonic() - started < 60
    _wait_for(limited, "facturflow_worker_restarts_total", restarts + 1)
    # The replaced worker answers the next request (a loaded pack applies to every request,
    # as with `validate --rule-pack`; this one is for CII only).
    again = httpx.post(limited.url + "/v1/validate?rules=xsd", content=UBL, headers=XML,
                       timeout=120)
    assert again.status_code == 200 and again.headers["x-facturflow-verdict"] == "valid"
    assert limited.metric('facturflow_verdicts_total{verdict="timeout"}') >= 1


def test_a_full_queue_answers_503_with_retry_after(limited: Service) -> None:
    url = limited.url + "/v1/validate?rules=xsd"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, url, content=CII, headers=XML, timeout=120)
        _wait_for(limited, "facturflow_in_flight", 1)  # on the worker
        second = pool.submit(httpx.post, url, content=CII, headers=XML, timeout=120)
        _wait_for(limited, "facturflow_queue_depth", 1)  # waiting: the queue (1) is full
        third = documented(httpx.post(url, content=CII, headers=XML, timeout=120))
        assert third.status_code == 503
        assert third.headers["retry-after"] == "1"
        assert third.json()["error"] == "QueueFull" and third.json()["exit_code"] == 4
        assert first.result().status_code == 504
        assert second.result().status_code == 504


def test_bodies_held_at_once_are_bounded(limited: Service) -> None:
    # queue 1 + 2 × 1 job: three requests sending their bodies slowly hold every place.
    parts = urlsplit(limited.url)
    slow = []
    for _ in range(3):
        conn = socket.create_connection((parts.hostname, parts.port), timeout=30)
        conn.sendall(b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml"
                     b"\r\nContent-Length: 1000\r\n\r\n<Invoice")
        slow.append(conn)
    try:
        deadline = time.monotonic() + 30
        while True:
            answer = httpx.post(limited.url + "/v1/validate", content=UBL, headers=XML,
                                timeout=120)
            if answer.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        documented(answer)
        assert answer.status_code == 503 and answer.json()["error"] == "QueueFull"
        assert "already being handled" in answer.json()["message"]
    finally:
        for conn in slow:
            conn.close()
    # Their places are freed when they leave; a client leaving is no bug.
    deadline = time.monotonic() + 30
    while (answer := httpx.post(limited.url + "/v1/validate", content=UBL, headers=XML,
                                timeout=120)).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert answer.status_code == 200
    assert limited.metric("facturflow_internal_errors_total") == 0


def test_sigterm_finishes_the_request_in_flight_then_exits_0(tmp_path: Path) -> None:
    sluggish = slow_pack(tmp_path, "sluggish", 4000)  # a few seconds
    service = Service(["--jobs", "1", "--request-timeout", "120", "--rule-pack", str(sluggish)])
    try:
        service.wait_ready()
        url = service.url + "/v1/validate?rules=xsd"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(httpx.post, url, content=CII, headers=XML, timeout=180)
            _wait_for(service, "facturflow_in_flight", 1)
            started = time.monotonic()
            service.proc.send_signal(signal.SIGTERM)
            # New connections are refused at once...
            deadline = time.monotonic() + 10
            refused = False
            while time.monotonic() < deadline and not running.done():
                try:
                    httpx.get(service.url + "/healthz", timeout=2)
                except httpx.ConnectError:
                    refused = True
                    break
                time.sleep(0.05)
            # ...while the one in flight completes with its report.
            answer = running.result()
            assert refused, "the service still accepted connections after SIGTERM"
        assert answer.status_code == 200, answer.text
        assert answer.json()["files"][0]["path"] == "invoice"
        assert service.proc.wait(timeout=120) == 0
        assert time.monotonic() - started < 120
        assert service.events("stopped")[-1]["signal"] == "SIGTERM"
    finally:
        service.stop()
