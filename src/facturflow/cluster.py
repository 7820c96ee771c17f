"""Batches on an executor: a dask.distributed cluster (`--scheduler tcp://HOST:PORT`) or any
concurrent.futures.Executor.

The files of a batch go out in chunks (16 to 64 files a task, fewer for a small batch) so that
the scheduler's cost per task stays small next to the validation's; at most a few chunks per
worker are in flight, so a batch of millions neither floods the scheduler nor holds every file in
memory; results come back as chunks finish and are yielded in input order.

Each task runs the local entry point (`facturflow.validation.validate`, `facturflow.convert`) in
the worker process, where Saxon's compiled stylesheets are kept per process (validate/
schematron.py): a Dask worker compiles the derived stylesheets once and keeps them warm from one
task to the next, exactly as a local pool worker does.

Files are read where they are: a worker that sees the file's absolute path, with the size and
modification time the client saw, reads it itself; otherwise the client ships the bytes. By
default (`ship_bytes=None`) a probe run once on every Dask worker decides: when every worker sees
a sample of the batch's files, paths go out (a worker that still cannot see one file says so and
gets its bytes); else bytes go out. A file the client itself cannot read is reported by the
client, as a local run would report it.

A worker that dies mid-task: the chunk's files are retried once each, one file per task, on
whichever worker the scheduler picks (the dead one is gone); a file whose retry dies too is
reported with a fatal LAYER-FAILED finding (validate) or refused (convert), never lost and never
valid by default. Dask would otherwise re-run a task lost with its worker up to
`distributed.scheduler.allowed-failures` times (3): a task counts its own runs in the
scheduler's metadata for its key (dropped with the task) and, when run again, hands the files
back for that single retry instead (a task whose result was lost with its worker after it
finished is simply run again).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import math
import os
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import __version__
from .errors import FacturflowError, InputError
from .xmlsafe import DEFAULT_LIMITS, Limits

SCHEDULER_ENV = "FACTURFLOW_SCHEDULER"
INSTALL_HINT = "pip install 'facturflow[dask]'"

R = TypeVar("R")
# The work of one file on a worker: (name for reports, source to read, options) -> result.
Work = Callable[[str, Any, Any], R]
# The result of a file that could not be processed: (name, why) -> result.
Failed = Callable[[str, str], R]

MAX_CHUNK = 64
# Chunks in flight per worker thread: one running, the next ones queued on the worker so that it
# never waits for the scheduler between two chunks.
IN_FLIGHT_PER_SLOT = 3
# Files sampled by the probe that decides between shared paths and shipped bytes.
PROBE_SAMPLES = 3


class ClusterError(FacturflowError):
    """The cluster cannot be used: Dask missing, the scheduler unreachable, workers that cannot
    run this facturflow (CLI exit code 3)."""


class DaskMissingError(ClusterError):
    """dask.distributed is not installed."""


class WorkerLost(RuntimeError):
    """A chunk ran again after its worker died: its files are handed back for one retry each."""


@dataclass(frozen=True)
class _Lost:
    """A task's answer when it runs again after its worker died mid-way (a return value, not an
    exception: the workers' logs would show every retry as a failed task)."""


LOST = _Lost()


@dataclass(frozen=True)
class _Unseen:
    """A worker's answer for a path it cannot see as the client saw it: ship the bytes."""


UNSEEN = _Unseen()


class _Named(io.BytesIO):
    """Bytes read elsewhere, named as the user named the file (reports carry the name)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


@dataclass(frozen=True)
class _Item:
    """One file as sent to a worker: its absolute path and the (size, mtime) the client saw, or
    its bytes."""

    name: str
    path: str | None
    stamp: tuple[int, int] | None
    data: bytes | None


def connect(address: str, timeout: float | None = None) -> Any:
    """A dask.distributed Client of the scheduler at `address` (tcp://HOST:PORT), with at least
    one worker. Raises DaskMissingError without Dask, ClusterError when the scheduler cannot be
    reached or has no worker within `timeout` seconds (default: Dask's
    distributed.comm.timeouts.connect, settable with DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)."""
    try:
        import dask
        import distributed
    except ImportError:
        raise DaskMissingError(
            f"--scheduler needs Dask, which is not installed: {INSTALL_HINT}"
        ) from None
    try:
        # Checked before a Client is built: a Client that fails on a malformed address is left
        # half-built, and its __del__ then hangs 60 s and prints a traceback.
        from distributed.comm.addressing import get_address_host_port

        host, port = get_address_host_port(address)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
    except ValueError as exc:
        raise ClusterError(
            f"invalid Dask scheduler address {address}: {exc} (expected tcp://HOST:PORT)"
        ) from None
    if address.partition("://")[0] in {"tcp", address}:
        # A refused connection or an unknown host is final: Dask would retry it silently for
        # its whole connect timeout (30 s). A host that does not answer is still left to Dask.
        try:
            with socket.create_connection((host, port), timeout=1):
                pass
        except (ConnectionRefusedError, socket.gaierror) as exc:
            reason = exc.strerror or type(exc).__name__
            raise ClusterError(
                f"cannot reach the Dask scheduler at {address}: {reason} (is `dask scheduler` "
                "running there?)"
            ) from None
        except OSError:
            pass
    if timeout is None:
        from dask.utils import parse_timedelta

        timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"))
    try:
        client: Any = distributed.Client
        client = client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {reason}"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        client.close()
        raise ClusterError(
            f"the Dask scheduler at {address} has no worker (start some with `dask worker "
            f"{address}`)"
        ) from None
    return client


def is_dask(executor: object) -> bool:
    """Whether `executor` is a dask.distributed Client (without importing Dask)."""
    return any(
        cls.__module__.startswith("distributed.") and cls.__name__ == "Client"
        for cls in type(executor).__mro__
    )


def slots(executor: Any) -> int:
    """How many tasks the executor runs at once: the cluster's worker threads, a pool's
    workers, else the cores of this machine."""
    if is_dask(executor):
        return max(1, int(sum(executor.nthreads().values())))
    workers = getattr(executor, "_max_workers", None)
    return workers if isinstance(workers, int) and workers > 0 else os.cpu_count() or 1


def chunk_size(files: int, slots: int) -> int:
    """Files per task: about four tasks per worker thread (so the work spreads, and the last
    tasks are short), at most 64 (so a lost task costs little). A batch of 64 files per thread
    or more gets 16 or more files a task: the scheduler's cost per task (a few milliseconds)
    stays small next to the validation's (about 7 ms of CPU per invoice)."""
    return max(1, min(MAX_CHUNK, math.ceil(files / (4 * slots))))


# --- on the workers ----------------------------------------------------------------------------


def _stamp(status: os.stat_result) -> tuple[int, int]:
    return status.st_size, status.st_mtime_ns


def _source(item: _Item, limits: Limits) -> Any:
    """What the work reads: the shipped bytes, or the file read here when this worker sees it as
    the client did (else UNSEEN)."""
    if item.data is not None:
        return _Named(item.data, item.name)
    assert item.path is not None
    try:
        status = os.stat(item.path)
        if not stat.S_ISREG(status.st_mode) or _stamp(status) != item.stamp:
            return UNSEEN  # not there, or another file of the same name (another host)
        with open(item.path, "rb") as stream:
            data = stream.read(limits.max_bytes + 1)
    except OSError:
        return UNSEEN
    return _Named(data, item.name)


def _task_state(on_dask: bool, state: str) -> str | None:
    """Note this Dask task's `state` ("started", "finished") in the scheduler's metadata under
    the task's own key (the scheduler drops it with the task); return the state noted before,
    None on a first run. "started" then means that the worker died while running it (not after:
    a result lost with its worker is computed again, and that is no failure of its files)."""
    if not on_dask:
        return None
    import distributed

    key = distributed.get_worker().get_current_task()
    client: Any = distributed.get_client()
    before: str | None = None
    if state == "started":
        before = client.get_metadata([key], default=None)
    client.set_metadata([key], state)
    return before


def run_chunk(
    work: Work[R],
    failed: Failed[R],
    options: Any,
    limits: Limits,
    items: Sequence[_Item],
    retry: bool,
    on_dask: bool,
) -> list[R | _Unseen] | _Lost:
    """A task: the work of every file of the chunk, in order (UNSEEN for a path not seen here);
    LOST when a worker died running it before (its files then get one retry each)."""
    if _task_state(on_dask, "started") == "started":
        if not retry:
            return LOST
        return [failed(item.name, _DIED_TWICE) for item in items]
    results: list[R | _Unseen] = []
    for item in items:
        source = _source(item, limits)
        results.append(UNSEEN if source is UNSEEN else work(item.name, source, options))
    _task_state(on_dask, "finished")
    return results


_DIED = "the worker process died while processing this file's chunk"
_DIED_TWICE = "the worker process died while processing this file, and again on its retry"


def probe(paths: Sequence[str]) -> dict[str, Any]:
    """Run once on each worker: its facturflow version and the (size, mtime) of each path as
    this worker sees it (None when it cannot read it)."""
    seen: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            status = os.stat(path)
            seen.append(_stamp(status) if os.access(path, os.R_OK) else None)
        except OSError:
            seen.append(None)
    return {"version": __version__, "seen": seen}


def scheduler_version(dask_scheduler: Any = None) -> str:
    """Run on the scheduler (`client.run_on_scheduler`): the facturflow version it can import."""
    return __version__


def worker_info() -> dict[str, int]:
    """Run on a worker (`client.run(worker_info)`): its process id and how many stylesheets its
    Saxon engine holds compiled (kept from one task to the next)."""
    from .validation import schematron

    engine = schematron._engine
    compiled = len(engine.compiled) if engine is not None and engine.pid == os.getpid() else 0
    return {"pid": os.getpid(), "compiled": compiled}


# --- on the client -----------------------------------------------------------------------------


@dataclass
class _Chunk:
    indices: list[int]
    items: list[_Item]
    retry: bool


class Runner(Generic[R]):
    """Runs a work function over files on an executor; see the module's docstring.

    `ship_bytes`: True always ships the files' bytes, False sends paths (the workers share the
    client's file system), None decides with a probe (Dask) or sends paths (another executor,
    which runs on this machine). `stats` counts what happened: chunks, retried and failed
    files, files shipped as bytes, files reported by the client itself.
    """

    def __init__(
        self,
        executor: Any,
        work: Work[R],
        failed: Failed[R],
        options: Any,
        *,
        limits: Limits = DEFAULT_LIMITS,
        ship_bytes: bool | None = None,
        chunk: int | None = None,
        folders: Sequence[str] = (),
    ) -> None:
        self.executor = executor
        self.work, self.failed, self.options, self.limits = work, failed, options, limits
        self.ship_bytes = ship_bytes
        self.chunk = chunk
        self.folders = [os.path.abspath(folder) for folder in folders]
        self.dask = is_dask(executor)
        self.address = str(getattr(getattr(executor, "scheduler", None), "address", "")) \
            if self.dask else ""
        self.stats: dict[str, int] = {}
        self._checked = False

    # The client's view of one file: an item to send, or None when the client reports it itself.
    def _item(self, name: str, ship: bool) -> _Item | None:
        if ship:
            from .detection import read_source

            try:
                data, _ = read_source(name, limits=self.limits)
            except InputError:
                return None
            return _Item(name, None, None, data)
        try:
            status = os.stat(name)
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode) or not 0 < status.st_size <= self.limits.max_bytes:
            return None
        return _Item(name, os.path.abspath(name), _stamp(status), None)

    def _check_workers(self, names: Sequence[str]) -> bool:
        """Check that every Dask worker runs this facturflow and sees the rule packs; return
        whether the batch's files should be shipped as bytes."""
        samples = [os.path.abspath(n) for n in _spread(names, PROBE_SAMPLES)]
        here = [probe([path])["seen"][0] for path in samples]
        folders = self.folders
        try:
            answers: dict[str, dict[str, Any]] = self.executor.run(probe, [*samples, *folders])
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ClusterError(
                f"the Dask workers cannot run facturflow (install facturflow {__version__} "
                f"on them): {reason}"
            ) from None
        try:
            # The scheduler unpickles each task, facturflow's function with it: without the
            # same facturflow there, every task would fail as if its worker had died.
            theirs = self.executor.run_on_scheduler(scheduler_version)
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ClusterError(
                f"the Dask scheduler at {self.executor.scheduler.address} cannot run facturflow "
                f"(install facturflow {__version__} on its machine too): {reason}"
            ) from None
        if theirs != __version__:
            raise ClusterError(
                f"the Dask scheduler at {self.executor.scheduler.address} has facturflow "
                f"{theirs}, this is {__version__}: install the same version everywhere"
            )
        ship = False
        for worker, answer in sorted(answers.items()):
            if answer.get("version") != __version__:
                raise ClusterError(
                    f"the Dask worker {worker} runs facturflow {answer.get('version')}, this "
                    f"is {__version__}: install the same version everywhere"
                )
            seen = answer["seen"]
            for folder, where in zip(folders, seen[len(samples):], strict=True):
                if where is None:
                    raise ClusterError(
                        f"the Dask worker {worker} cannot read the rule pack {folder}: put it "
                        "on a path every worker sees"
                    )
            if seen[: len(samples)] != here:
                ship = True
        return ship

    def run(self, names: Sequence[str]) -> Iterator[R]:
        """The results of `names`, in input order."""
        stats = self.stats
        for counter in ("chunks", "retried", "failed", "shipped", "local"):
            stats.setdefault(counter, 0)
        if not names:
            return
        ship = self.ship_bytes
        if self.dask and (ship is None or not self._checked):
            probed = self._check_workers(names)
            self._checked = True
            ship = probed if ship is None else ship
        ship = bool(ship)
        size = self.chunk or chunk_size(len(names), slots(self.executor))
        window = IN_FLIGHT_PER_SLOT * slots(self.executor)
        token = uuid.uuid4().hex
        done: dict[int, R] = {}
        pending: list[_Chunk] = []  # chunks to send before new files: retries, shipped bytes
        in_flight: dict[Any, _Chunk] = {}
        next_file = next_out = 0
        arrivals = self._arrivals()

        def submit(chunk: _Chunk) -> None:
            stats["chunks"] += 1
            args = (self.work, self.failed, self.options, self.limits, chunk.items,
                    chunk.retry, self.dask)
            if self.dask:
                key = f"facturflow-{token}-{stats['chunks']}"
                try:
                    future = self.executor.submit(run_chunk, *args, key=key, pure=False)
                except Exception:
                    self._check_scheduler()
                    raise
                arrivals.add(future)
            else:
                try:
                    future = self.executor.submit(run_chunk, *args)
                except Exception as exc:  # a broken or shut-down pool
                    settle_error(chunk, exc)
                    return
            in_flight[future] = chunk

        def settle_error(chunk: _Chunk, exc: BaseException) -> None:
            if not chunk.retry:
                stats["retried"] += len(chunk.indices)
                pending.extend(
                    _Chunk([index], [item], True)
                    for index, item in zip(chunk.indices, chunk.items, strict=True)
                )
                return
            reason = _DIED_TWICE if isinstance(exc, WorkerLost) else (
                f"{_DIED} ({type(exc).__name__}: {' '.join(str(exc).split())}), and again on "
                "its retry"
            )
            for index, item in zip(chunk.indices, chunk.items, strict=True):
                stats["failed"] += 1
                done[index] = self.failed(item.name, reason)

        def settle(chunk: _Chunk, results: list[R | _Unseen]) -> None:
            unseen: list[tuple[int, _Item]] = []
            for index, item, result in zip(chunk.indices, chunk.items, results, strict=True):
                if isinstance(result, _Unseen):
                    unseen.append((index, item))
                else:
                    done[index] = result
            if unseen:
                shipped = _Chunk([], [], chunk.retry)
                for index, item in unseen:
                    again = self._item(item.name, ship=True)
                    if again is None:
                        local(index, item.name)
                    else:
                        stats["shipped"] += 1
                        shipped.indices.append(index)
                        shipped.items.append(again)
                if shipped.items:
                    pending.append(shipped)

        def local(index: int, name: str) -> None:
            # An input the client cannot read: the local entry point reports it, in this
            # process, as a local run would (it fails at the read, before any Saxon work).
            stats["local"] += 1
            done[index] = self.work(name, name, self.options)

        def fill() -> None:
            nonlocal next_file
            while len(in_flight) < window and (pending or next_file < len(names)):
                if pending:
                    submit(pending.pop(0))
                    continue
                chunk = _Chunk([], [], False)
                while next_file < len(names) and len(chunk.items) < size:
                    index, name = next_file, names[next_file]
                    next_file += 1
                    item = self._item(name, ship)
                    if item is None:
                        local(index, name)
                    else:
                        stats["shipped"] += item.data is not None
                        chunk.indices.append(index)
                        chunk.items.append(item)
                if chunk.items:
                    submit(chunk)

        try:
            fill()
            while next_out < len(names):
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                if next_out >= len(names):
                    break
                if not in_flight:
                    fill()
                    if not in_flight and next_out not in done:  # every file is accounted for
                        raise RuntimeError(f"no task holds {names[next_out]}")  # pragma: no cover
                    continue
                for future in self._first_completed(arrivals, list(in_flight)):
                    chunk = in_flight.pop(future)
                    try:
                        results = future.result()
                    except Exception as exc:  # the worker died, or the pool broke
                        self._check_scheduler()  # or the scheduler is gone: no retry helps
                        settle_error(chunk, exc)
                    else:
                        if isinstance(results, _Lost):
                            settle_error(chunk, WorkerLost("the worker running it died"))
                        else:
                            settle(chunk, results)
                fill()
        except KeyboardInterrupt:
            # Ctrl-C: what finished is still reported, out of order past a gap (as the local
            # pool does); the caller then sees the interrupt.
            for index in sorted(done):
                yield done.pop(index)
            raise
        finally:
            self._cancel(list(in_flight))

    def _arrivals(self) -> Any:
        """Dask: an as_completed collection, fed with each chunk's future as it is sent."""
        if not self.dask:
            return None
        import distributed

        as_completed: Any = distributed.as_completed
        return as_completed(loop=self.executor.loop, raise_errors=False)

    def _check_scheduler(self) -> None:
        """Raise ClusterError when the Dask client has lost its scheduler (its tasks are gone)."""
        if self.dask and self.executor.status in {"closing", "closed"}:
            raise ClusterError(
                f"lost the Dask scheduler at {self.address} during the batch: the files not "
                "reported were not validated"
            )

    def _first_completed(self, arrivals: Any, futures: list[Any]) -> set[Any]:
        if arrivals is not None:
            # Polled, not a blocking next(): a scheduler lost for good completes no future.
            while not arrivals.has_ready():
                self._check_scheduler()
                time.sleep(0.02)
            return {next(arrivals)}
        finished, _ = concurrent.futures.wait(
            futures, return_when=concurrent.futures.FIRST_COMPLETED
        )
        return finished

    def _cancel(self, futures: list[Any]) -> None:
        if not futures:
            return
        with contextlib.suppress(Exception):  # a client already closed, a pool shut down
            if self.dask:
                self.executor.cancel(futures)
            else:
                for future in futures:
                    future.cancel()


def _spread(names: Sequence[str], count: int) -> list[str]:
    """Up to `count` names spread over the batch (first, middle, last)."""
    if len(names) <= count:
        return list(names)
    step = (len(names) - 1) / (count - 1)
    return [names[round(i * step)] for i in range(count)]
