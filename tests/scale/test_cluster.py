"""Batches on a dask.distributed cluster (and on plain concurrent.futures executors): the same
reports as a local run, in input order, nothing lost when a worker dies (facturflow.cluster).

The cluster is a real LocalCluster: a scheduler and two worker processes (spawned, each with
its own Saxon) on loopback, as `dask scheduler` and `dask worker` would run them on machines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.conftest import corpus_path, corpus_rows

from facturflow import exitcodes
from facturflow.cli import main
from facturflow.cluster import ClusterError, Runner, chunk_size, connect, worker_info
from facturflow.convert_cli import _Options, _run, run_on
from facturflow.validation import BatchValidator, validate_many
from facturflow.validation.report import LAYER_FAILED, Report

from .poison import poison_failed, poison_work

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")

ROWS = corpus_rows()
pytestmark = pytest.mark.skipif(
    not ROWS, reason=f"shared corpus not found at {corpus_path()} (set FACTURFLOW_CORPUS)"
)
# A few hundred corpus files, every format and verdict (valid, invalid, unreadable), and a file
# that does not exist: every fourth row of the manifest.
FILES = [*[str(corpus_path() / row["path"]) for row in ROWS][::4], "/nonexistent/missing.xml"]
CONVERTED = FILES[::4]


def comparable(report: Report) -> Report:
    # Layer timings differ from run to run; everything else must be identical.
    layers = tuple(dataclasses.replace(layer, seconds=0.0) for layer in report.layers)
    return dataclasses.replace(report, layers=layers)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1",
    ) as cluster, distributed.Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def local_reports() -> list[Report]:
    return list(validate_many(FILES, jobs=2))


def test_a_batch_on_the_cluster_reports_what_a_local_run_reports(
    client: Any, local_reports: list[Report]
) -> None:
    assert len(FILES) > 250
    reports = list(validate_many(FILES, executor=client))
    assert len(reports) == len(FILES)
    # Same order, same findings, same everything (a PDF's report names its attachment).
    assert [comparable(r) for r in reports] == [comparable(r) for r in local_reports]
    assert {r.ok for r in reports} == {True, False}  # valid and invalid files both went through
    # Each worker compiled its stylesheets once and keeps them for the next task and batch.
    info = client.run(worker_info)
    assert len(info) == 2 and all(i["compiled"] > 0 for i in info.values())


def test_shipped_bytes_and_a_kept_batch_validator_report_the_same(
    client: Any, local_reports: list[Report]
) -> None:
    some = FILES[::5]
    expected = [comparable(r) for r in local_reports[::5]]
    with BatchValidator(executor=client, ship_bytes=True) as validator:
        shipped = list(validator.validate_many(some))
        assert validator.stats["shipped"] == sum(Path(f).is_file() for f in some)
        again = list(validator.validate_many(reversed(some)))
    assert [comparable(r) for r in shipped] == expected
    assert [comparable(r) for r in again] == expected[::-1]


def test_a_path_the_workers_do_not_see_as_the_client_does_gets_its_bytes(
    client: Any, tmp_path: Path, local_reports: list[Report]
) -> None:
    # The client changes the file after saying what it saw: the workers must not validate
    # another file under the same name; they hand it back and the client ships its bytes.
    original = Path(FILES[0])
    copy = tmp_path / original.name
    copy.write_bytes(original.read_bytes())
    runner = Runner(client, _validate_source, _failed, _config(), ship_bytes=False)
    real_item = runner._item

    def stale(name: str, ship: bool) -> Any:
        item = real_item(name, ship)
        if not ship and item is not None:
            item = dataclasses.replace(item, stamp=(item.stamp[0], item.stamp[1] - 1))
        return item

    runner._item = stale  # type: ignore[method-assign]
    (report,) = runner.run([str(copy)])
    assert runner.stats["shipped"] == 1
    assert comparable(report) == dataclasses.replace(comparable(local_reports[0]), path=str(copy))


def _config() -> Any:
    from facturflow.rules import parse_rule_sets
    from facturflow.xmlsafe import DEFAULT_LIMITS

    return (parse_rule_sets(None), [], DEFAULT_LIMITS)


def _validate_source(name: str, source: Any, config: Any) -> Report:
    from facturflow.validation import validate_source

    return validate_source(name, source, config)


def _failed(name: str, why: str) -> Report:
    from facturflow.validation.pool import failed_report

    return failed_report(name, why)


def test_a_worker_killed_during_a_batch_loses_no_file(
    client: Any, local_reports: list[Report]
) -> None:
    expected = [comparable(r) for r in local_reports]
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    reports: list[Report] = []
    with BatchValidator(executor=client) as validator:
        for report in validator.validate_many(FILES):
            if not reports:  # the first chunk is back, the next ones are on both workers
                os.kill(victim, signal.SIGKILL)
            reports.append(report)
        stats = dict(validator.stats)
    assert len(reports) == len(FILES)  # every file reported, in input order
    failed = 0
    for name, report, local in zip(FILES, reports, expected, strict=True):
        if any(f.rule == LAYER_FAILED and "worker process died" in f.message
               for f in report.findings):
            failed += 1
            assert report.path == name and not report.ok  # never valid by default
        else:
            assert comparable(report) == local
    assert stats["retried"] > 0  # the killed worker's chunk(s) came back for a retry
    assert failed == stats["failed"]
    client.wait_for_workers(2, timeout=120)  # the nanny restarted it, for the next tests


def test_a_file_that_kills_its_worker_is_retried_once_then_failed(
    client: Any, tmp_path: Path
) -> None:
    names = []
    for i in range(40):
        path = tmp_path / (f"{i:02}-poison.txt" if i == 17 else f"{i:02}.txt")
        path.write_text(str(i))
        names.append(str(path))
    log = tmp_path / "deaths.log"
    runner = Runner(client, poison_work, poison_failed, str(log))
    results = list(runner.run(names))
    assert results[17] == (
        f"FAILED {names[17]}: the worker process died while processing this file, and again "
        "on its retry"
    )
    assert results[:17] + results[18:] == [
        f"{name}:{i}" for i, name in enumerate(names) if i != 17
    ]
    # Two deaths, not Dask's allowed-failures + 1 (4): the chunk, then the file's one retry.
    assert len(log.read_text().split()) == 2
    assert runner.stats["retried"] == chunk_size(40, 2)
    client.wait_for_workers(2, timeout=120)


def test_convert_on_the_cluster_writes_what_a_local_run_writes(
    client: Any, tmp_path: Path
) -> None:
    options = _Options(to="ubl", profile=None, pdf=None, lossy=False, lang="fr")
    local = list(_run(_jobs(tmp_path / "local", options), 2))
    remote = list(run_on(client, _jobs(tmp_path / "remote", options)))
    assert len(remote) == len(CONVERTED) > 60
    assert {o.status for o in remote} >= {"converted", "refused", "unreadable"}
    for a, b in zip(local, remote, strict=True):
        assert (a.source, a.status, a.message, a.dropped, a.warnings) == (
            b.source, b.status, b.message, b.dropped, b.warnings)
        if a.status == "converted":
            assert a.target is not None and b.target is not None
            assert Path(a.target).read_bytes() == Path(b.target).read_bytes()


def _jobs(folder: Path, options: _Options) -> list[tuple[str, str, _Options]]:
    return [(source, str(folder / f"{i:03}.xml"), options) for i, source in enumerate(CONVERTED)]


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_a_plain_executor_reports_what_a_local_run_reports(
    kind: str, local_reports: list[Report]
) -> None:
    some, expected = FILES[:40], [comparable(r) for r in local_reports[:40]]
    pool = ThreadPoolExecutor(2) if kind == "threads" else ProcessPoolExecutor(2)
    with pool:
        reports = list(validate_many(some, executor=pool))
    assert [comparable(r) for r in reports] == expected


def test_a_process_pool_whose_worker_dies_loses_no_file(local_reports: list[Report]) -> None:
    some = FILES[:60]
    expected = [comparable(r) for r in local_reports[:60]]
    with ProcessPoolExecutor(2) as pool:
        pids = list(pool.submit(os.getpid).result() for _ in range(4))
        reports = []
        for report in validate_many(some, executor=pool):
            if not reports:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids[0], signal.SIGKILL)
            reports.append(report)
    assert len(reports) == len(some)
    for name, report, local in zip(some, reports, expected, strict=True):
        if any(f.rule == LAYER_FAILED and "worker process died" in f.message
               for f in report.findings):
            assert report.path == name and not report.ok  # never valid by default
        else:
            assert comparable(report) == local


# --- the command line ----------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facturflow", *args], capture_output=True, text=True,
        timeout=600, env={**os.environ, **(env or {})},
    )


def test_cli_validate_with_scheduler_reports_what_a_local_run_reports(
    client: Any, tmp_path: Path
) -> None:
    some = FILES[::8]
    local = _cli("validate", "--format", "json", "--jobs", "2", *some)
    remote = _cli("validate", "--format", "json", *some,
                  env={"FACTURFLOW_SCHEDULER": client.scheduler.address})
    shipped = _cli("validate", "--format", "json", "--ship-bytes", "--scheduler",
                   client.scheduler.address, *some)
    assert local.returncode == exitcodes.USAGE  # the missing file
    expected = _without_timings(json.loads(local.stdout))
    for run in (remote, shipped):
        assert (run.returncode, run.stderr) == (local.returncode, local.stderr)
        assert _without_timings(json.loads(run.stdout)) == expected


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in {"seconds"}}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_cli_convert_with_scheduler(client: Any, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for source in CONVERTED[:8]:
        if Path(source).is_file():
            (folder / Path(source).name).write_bytes(Path(source).read_bytes())
    local = _cli("convert", str(folder), "--to", "cii", "-o", str(tmp_path / "local"))
    remote = _cli("convert", str(folder), "--to", "cii", "-o", str(tmp_path / "remote"),
                  "--scheduler", client.scheduler.address)
    assert remote.returncode == local.returncode
    assert remote.stdout.replace("/remote/", "/local/") == local.stdout
    assert remote.stderr == local.stderr
    written = sorted(p.name for p in (tmp_path / "remote").iterdir())
    assert written and written == sorted(p.name for p in (tmp_path / "local").iterdir())
    for name in written:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["validate", "convert"])
def test_cli_an_unreachable_scheduler_is_one_line_and_exit_3(command: str, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    args = [FILES[0]] if command == "validate" else [FILES[0], "-o", str(tmp_path / "x.pdf")]
    started = time.monotonic()
    result = _cli(command, *args, "--scheduler", address,
                  env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert result.returncode == exitcodes.CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr and time.monotonic() - started < 60
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("command", ["validate", "convert"])
def test_cli_without_dask_the_option_says_how_to_install_it(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("dask", "distributed"):
        monkeypatch.setitem(sys.modules, module, None)  # `import distributed` raises ImportError
    args = [FILES[0]] if command == "validate" else [FILES[0], "-o", str(tmp_path / "x.pdf")]
    result = CliRunner().invoke(main, [command, *args, "--scheduler", "tcp://127.0.0.1:8786"])
    assert result.exit_code == exitcodes.CONFIG
    assert "pip install 'facturflow[dask]'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_scheduler_without_workers_is_refused() -> None:
    with distributed.LocalCluster(
        n_workers=0, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster, pytest.raises(ClusterError, match="has no worker"):
        connect(cluster.scheduler_address, timeout=1)


def test_chunks_spread_a_small_batch_and_stay_bounded_for_a_large_one() -> None:
    assert chunk_size(40, 2) == 5  # four tasks per worker thread
    assert chunk_size(10_000, 2) == 64
    assert chunk_size(10_000_000, 200) == 64
    assert chunk_size(1, 8) == 1


def test_workers_running_another_facturflow_are_refused(client: Any) -> None:
    # The probe compares versions: a worker with another facturflow would judge with other
    # artefacts or rules, so the batch does not start.
    def older() -> None:
        import facturflow.cluster

        facturflow.cluster.__version__ = "0.0.1"  # type: ignore[attr-defined]

    def restore(version: str) -> None:
        import facturflow.cluster

        facturflow.cluster.__version__ = version  # type: ignore[attr-defined]

    from facturflow import __version__

    client.run(older)
    try:
        with pytest.raises(ClusterError, match=r"runs facturflow 0\.0\.1"):
            list(validate_many(FILES[:3], executor=client))
    finally:
        client.run(restore, __version__)


def test_interrupting_the_reading_cancels_the_chunks_in_flight(client: Any) -> None:
    stream = validate_many(FILES, executor=client)
    first = next(stream)
    assert first.path == FILES[0]
    stream.close()  # what a Ctrl-C does to the CLI's iteration
    deadline = time.monotonic() + 30
    while _running(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(client)
    # The client is still usable.
    assert list(validate_many(FILES[:2], executor=client))[1].path == FILES[1]


def _running(client: Any) -> list[str]:
    return list(client.run_on_scheduler(
        lambda dask_scheduler: [
            str(key) for key, task in dask_scheduler.tasks.items()
            if "facturflow" in str(key) and task.state in ("queued", "processing", "waiting")
        ]
    ))


def test_cli_sigterm_during_a_cluster_batch_reports_what_finished_and_cancels_the_rest(
    client: Any,
) -> None:
    files = [f for f in FILES if Path(f).is_file()] * 3
    process = subprocess.Popen(
        [sys.executable, "-m", "facturflow", "validate", "--summary", *files],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FACTURFLOW_SCHEDULER": client.scheduler.address},
    )
    deadline = time.monotonic() + 120
    while not _running(client) and time.monotonic() < deadline:  # the batch is under way
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == exitcodes.INTERRUPTED
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: ") and line.endswith(f"of {len(files)} files validated "
                                                             "and reported")
    finished = int(line.split()[1])
    assert finished < len(files) and len(stdout.splitlines()) >= finished
    deadline = time.monotonic() + 30
    while _running(client) and time.monotonic() < deadline:  # the client's tasks are released
        time.sleep(0.2)
    assert not _running(client)
