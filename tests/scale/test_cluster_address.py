"""A --scheduler address that cannot work fails at once, in one line (facturflow.cluster.connect):
no Dask connect timeout to wait for, no traceback from a half-built client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from facturflow import exitcodes

REPO = Path(__file__).resolve().parents[2]

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")

FIXTURE = str(Path(__file__).resolve().parents[2] / "fixtures" / "valid" / "fr-invoice-en16931.xml")


def _cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "facturflow", *args], capture_output=True, text=True,
        timeout=300, env=env,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "address",
    ["http://127.0.0.1:8786", "tcp:/127.0.0.1:8786", "scheduler-host", "tcp://127.0.0.1:87999"],
)
def test_a_malformed_scheduler_address_is_one_line_at_once(address: str, tmp_path: Path) -> None:
    result, seconds = _cli("validate", "--no-cache", "--scheduler", address, FIXTURE)
    assert result.returncode == exitcodes.CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and address in lines[0]
    assert seconds < 20  # Dask's connect timeout (30 s) is not waited for, nor its 60 s close


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


@pytest.mark.parametrize("command", ["validate", "convert"])
def test_a_port_where_nothing_listens_fails_at_once(command: str, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_refused_port()}"
    args = [FIXTURE] if command == "validate" else [FIXTURE, "-o", str(tmp_path / "x.pdf")]
    result, seconds = _cli(command, *args, "--scheduler", address)
    assert result.returncode == exitcodes.CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "refused" in lines[0], result.stderr
    assert seconds < 20  # not the 30 s connect timeout
    assert not (tmp_path / "x.pdf").exists()


@pytest.fixture(scope="module")
def scheduler() -> Any:
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize(
    ("command", "options", "named"),
    [
        ("validate", ["--jobs", "3", "--timeout", "5"], "--jobs, --timeout"),
        ("validate", ["--timeout", "5"], "--timeout"),
        ("convert", ["--jobs", "3"], "--jobs"),
    ],
)
def test_options_that_do_not_apply_on_a_cluster_are_named(
    scheduler: str, command: str, options: list[str], named: str, tmp_path: Path
) -> None:
    args = [FIXTURE] if command == "validate" else [FIXTURE, "-o", str(tmp_path / "x.pdf"),
                                                     "--to", "facturx"]
    result, _ = _cli(command, *args, "--scheduler", scheduler, *options)
    assert result.returncode == exitcodes.OK, result.stderr
    assert f"note: {named} do not apply with --scheduler" in result.stderr
    alone, _ = _cli(command, *args, "--scheduler", scheduler)
    assert "note:" not in alone.stderr


# A `dask scheduler` on a machine without facturflow: it cannot unpickle facturflow's tasks.
_SCHEDULER_WITHOUT_FACTURFLOW = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "facturflow":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
from distributed.cli.dask_scheduler import main
sys.argv = ["dask-scheduler", *sys.argv[1:]]
main()
"""


def test_a_scheduler_without_facturflow_is_refused_not_every_file_failed(tmp_path: Path) -> None:
    # It used to fail every task: each file reported INVALID with LAYER-FAILED ("the worker
    # process died"), exit code 1, for a batch of valid invoices.
    port = _refused_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    processes = [subprocess.Popen(
        [sys.executable, "-c", _SCHEDULER_WITHOUT_FACTURFLOW, "--host", "127.0.0.1", "--port",
         str(port), "--no-dashboard"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )]
    try:
        time.sleep(3)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
             "--nthreads", "1", "--no-dashboard"], cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        result, _ = _cli("validate", "--no-cache", "--scheduler", address, FIXTURE)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    assert result.returncode == exitcodes.CONFIG, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "scheduler" in lines[0] and address in lines[0], result.stderr
    assert "LAYER-FAILED" not in result.stdout


def test_a_scheduler_killed_mid_run_ends_the_run_with_one_line(tmp_path: Path) -> None:
    # It used to hang for good: the chunks in flight never came back. The batch cannot end on
    # its own meanwhile: a rule pack that loops for minutes on each CII invoice.
    from tests.service.conftest import slow_pack

    pack = slow_pack(tmp_path, "endless", 20_000)
    invoices = tmp_path / "invoices"
    invoices.mkdir()
    cii = REPO / "fixtures" / "valid" / "fr-invoice-en16931.xml"
    for n in range(4):
        (invoices / f"cii-{n}.xml").write_bytes(cii.read_bytes())
    port = _refused_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DASK_")},
           "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    worker = run = None
    try:
        time.sleep(3)
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
             "--nthreads", "1", "--no-dashboard"], cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        run = subprocess.Popen(
            [sys.executable, "-m", "facturflow", "validate", "--no-cache", "-q", "--scheduler",
             address, "--rule-pack", str(pack), str(invoices)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(12)
        assert run.poll() is None, "the batch ended before the scheduler could be killed"
        scheduler.kill()
        killed = time.monotonic()
        _, stderr = run.communicate(timeout=120)
        assert time.monotonic() - killed < 90
    finally:
        for process in (run, worker, scheduler):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=60)
    assert run.returncode == exitcodes.CONFIG, stderr
    # Dask's client logs its failed reconnection itself; ours is the last line, no traceback.
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: lost the Dask scheduler") and address in last, stderr
    assert "Traceback" not in stderr
