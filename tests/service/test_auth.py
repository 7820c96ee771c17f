"""Off loopback the service needs a bearer token, from the environment only."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from .conftest import FIXTURES, REPO, Service, documented

XML = {"Content-Type": "application/xml"}
CII = (FIXTURES / "valid" / "fr-invoice-en16931.xml").read_bytes()


def test_off_loopback_without_a_token_refuses_to_start() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "FACTURFLOW_SERVE_TOKEN": ""}
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 is not loopback: set FACTURFLOW_SERVE_TOKEN to the bearer token "
        "clients must send"
    ]


def test_the_token_is_not_an_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", "serve", "--token", "x"], capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=120,
    )
    assert result.returncode == 2 and "--token" in result.stderr


def test_off_loopback_with_a_token() -> None:
    token = "s3cret-token-for-the-test"
    service = Service(["--host", "0.0.0.0", "--jobs", "1"],
                      env={"FACTURFLOW_SERVE_TOKEN": token})
    try:
        service.wait_ready()  # /readyz needs no token (probes)
        url = service.url + "/v1/validate"
        assert service.events("listening")[0]["auth"] is True
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token},
                        {"Authorization": "Basic " + token}):
            answer = documented(httpx.post(url, content=CII, headers={**XML, **headers}))
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.json()["error"] == "Unauthorized" and answer.json()["exit_code"] == 3
        assert httpx.get(service.url + "/metrics").status_code == 401
        good = {"Authorization": f"Bearer {token}"}
        answer = documented(httpx.post(url, content=CII, headers={**XML, **good}))
        assert answer.status_code == 200 and answer.headers["x-facturflow-verdict"] == "valid"
        assert httpx.get(service.url + "/metrics", headers=good).status_code == 200
        assert httpx.get(service.url + "/healthz").status_code == 200
    finally:
        assert service.stop() == 0
    assert token not in "".join(service.lines)  # never logged
