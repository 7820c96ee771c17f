"""Fixtures of the transmission tests: a sandbox and a client on it, per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facturflow.transmit.qonto import QontoClient
from facturflow.transmit.sandbox import Sandbox, SandboxConfig

from .transmit_helpers import make_client


@pytest.fixture(autouse=True)
def _own_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default state folder is the user's (platformdirs): never the real user's in a test."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(state_dir=tmp_path / "sandbox")) as box:
        yield box


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[QontoClient]:
    with make_client(sandbox) as c:
        yield c
