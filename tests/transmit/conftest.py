"""Fixtures of the transmission tests: a sandbox, a client on it, and the CLI's environment
pointing at it, per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facturflow.transmit.qonto import QontoClient
from facturflow.transmit.sandbox import Sandbox, SandboxConfig

from .pg_helpers import PgServer, Unavailable, running_server
from .transmit_helpers import QONTO_VARS, make_client


@pytest.fixture(autouse=True)
def _own_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default state folder is the user's (platformdirs): never the real user's in a test."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture
def sandbox_config(tmp_path: Path) -> SandboxConfig:
    """What `sandbox` starts with (a module overrides this fixture for other settings)."""
    return SandboxConfig(state_dir=tmp_path / "sandbox")


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Iterator[Sandbox]:
    with Sandbox(sandbox_config) as box:
        yield box


@pytest.fixture
def box(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """`sandbox`, with the environment pointing the CLI at it: none of the user's QONTO_* or
    FACTURFLOW_* variables, fast retries. A module overrides `box` (requesting this one) to set
    more."""
    for name in QONTO_VARS:
        monkeypatch.delenv(name, raising=False)
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QONTO_BACKOFF_BASE", "0.01")
    return sandbox


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own and no XDG_STATE_HOME: the default state folder is in that
    HOME (nothing is written into the real user's home)."""
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[QontoClient]:
    with make_client(sandbox) as c:
        yield c


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the session (see pg_helpers); the tests that use it skip,
    with the reason, only where none can be started."""
    try:
        pytest.importorskip("psycopg", reason="psycopg is not installed (facturflow[postgresql])")
        with running_server() as server:
            yield server
    except Unavailable as exc:
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a new, empty database on the test server (dropped after the test)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
