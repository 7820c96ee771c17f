"""Start `facturflow serve` as a subprocess on a free loopback port and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures"
OPENAPI = json.loads(
    (REPO / "src" / "facturflow" / "service" / "openapi.json").read_text(encoding="utf-8")
)


class Service:
    """A running `facturflow serve` and the JSON lines it logged."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        environment = {
            **os.environ, "PYTHONPATH": str(REPO / "src"), "FACTURFLOW_SERVE_TOKEN": "",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "facturflow", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, text=True,
        )
        self.lines: list[str] = []
        self.url = ""
        self._listening = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if '"event": "listening"' in line:
                self.url = json.loads(line)["url"].replace("0.0.0.0", "127.0.0.1")
                self._listening.set()
        self._listening.set()

    def events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("event") == event:
                    found.append(entry)
        return found

    def wait_ready(self, timeout: float = 240) -> None:
        if not self._listening.wait(timeout) or not self.url:
            raise AssertionError("the service did not start:\n" + "".join(self.lines[-30:]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(self.url + "/readyz").status_code == 200:
                return
            time.sleep(0.2)
        raise AssertionError("the service never became ready")

    def metric(self, name: str, headers: dict[str, str] | None = None) -> float:
        text = httpx.get(self.url + "/metrics", headers=headers).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def documented(response: httpx.Response) -> httpx.Response:
    """The response, after checking its status is one the OpenAPI document gives its route."""
    path = response.request.url.path
    method = response.request.method.lower()
    operation = OPENAPI["paths"][path][method]
    assert str(response.status_code) in operation["responses"], (
        f"{method.upper()} {path} answered {response.status_code}, not in openapi.json"
    )
    return response


def slow_pack(folder: Path, name: str, n: int) -> Path:
    """A rule pack whose stylesheet loops n² times on a CII invoice (as in test_processes)."""
    pack = folder / name
    pack.mkdir()
    (pack / "rulepack.toml").write_text(
        f'name = "{name}"\n[[schematron]]\nfile = "slow.xslt"\nsyntaxes = ["cii"]\n'
    )
    (pack / "slow.xslt").write_text(
        '<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><out><xsl:value-of select="sum(for $i in 1 to '
        f'{n}, $j in 1 to {n} return ($i * $j) mod 7)"/></out></xsl:template></xsl:stylesheet>'
    )
    return pack


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """One service for the endpoint tests: one worker, a 1 MB size limit."""
    running = Service(["--jobs", "1", "--max-size", "1MB"])
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
