"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries (initdb, pg_ctl), a
cluster initialised in a temporary folder, listening on a free loopback port, stopped and
removed at the end. As root (initdb refuses to run as root), the server runs as the
`postgres` user when there is one, else `nobody`, in a folder given to that user."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

USER, PASSWORD = "facturflow", "s3cret-pg-pass"


class Unavailable(Exception):
    """Why no server can be started here (the tests skip with it)."""


def find_bin_dir() -> Path:
    """The folder of initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parent.parent.name)
                      if Path(p).parent.parent.name.isdigit() else 0)
    if versions:
        return Path(versions[-1]).parent
    raise Unavailable("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in "
                      "/usr/lib/postgresql/*/bin: install Debian's postgresql package "
                      "(`make test` does, as root with apt-get)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A throw-away PostgreSQL cluster; `url(db)` for a database in it."""

    def __init__(self) -> None:
        self.bin = find_bin_dir()
        self.run_as: str | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    pwd.getpwnam(name)
                    self.run_as = name
                    break
            if self.run_as is None or shutil.which("runuser") is None:
                raise Unavailable("running as root with no `postgres`/`nobody` user or no "
                                  "runuser: initdb refuses to run as root")
        # Not under pytest's tmp folder: that one is private to its owner (mode 0700).
        self.root = Path(tempfile.mkdtemp(prefix="facturflow-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._databases = 0
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, check=False)

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        done = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER,
                         "--auth-local=trust", "--auth-host=scram-sha-256",
                         f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync")
        if done.returncode:
            raise Unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        for _ in range(5):  # a free port may be taken between the probe and the start
            self.port = _free_port()
            # fsync off: a test cluster dies with its folder; durability of the server is
            # PostgreSQL's business, what the tests check is what facturflow commits when.
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                       f"-c unix_socket_directories={self.root} -c fsync=off "
                       "-c full_page_writes=off -c max_connections=200")
            started = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                                str(self.root / "log"), "-w", "-t", "60", "-o", options,
                                "start")
            if started.returncode == 0:
                return
        log = (self.root / "log").read_text(errors="replace")[-800:] if (
            self.root / "log").exists() else started.stderr
        raise Unavailable(f"pg_ctl could not start the test server: {log.strip()}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", *, password: str = PASSWORD,
            user: str = USER) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.url(),
                                                                 autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
