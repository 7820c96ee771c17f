"""A small process pool for batches that can stop a worker stuck on one file.

saxonche cannot interrupt a running transform, so the only way to bound the time spent on a
hostile or pathological document is to run it in a process that can be killed. A file that
exceeds the time limit gets a fatal LAYER-FAILED report; its worker is replaced and the batch
goes on. A worker that dies (a crash in native code) is reported the same way.

Workers are also recycled, so a long batch cannot grow: a worker whose resident set exceeds
`max_rss_mb` after a file (default DEFAULT_MAX_RSS_MB; Linux, read from /proc), or that has
validated `max_tasks` files (default: no limit), is stopped between two files and replaced. Its
results are already collected, so nothing is lost; the new worker compiles its stylesheets again
(a few seconds of CPU), which is why the limits are high by default: with Saxon's young generation
bounded (saxonheap.py) a worker validating typical invoices of both syntaxes peaks at about
550 MB (benchmarks/README.md, target 4).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from .report import LAYER_FAILED, Finding, Report

Task = Callable[[str], Report]

# About twice the resident set of a worker between two typical invoices of both syntaxes (about
# 390 MB): only an outlier (a huge invoice, or unforeseen growth) triggers a replacement.
DEFAULT_MAX_RSS_MB = 768.0


def rss_mb(pid: int) -> float | None:
    """The resident set size of a process in MB, or None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    # Fork where possible: scripts need no __main__ guard, and a worker builds its own Saxon
    # processor, so a parent that already used Saxon is safe to fork.
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _worker(
    conn: Connection, task: Task, init: Callable[..., None], init_args: tuple[Any, ...]
) -> None:
    from . import schematron

    schematron.quiet_native_stderr()  # a worker's Saxon errors reach the report, not the terminal
    init(*init_args)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        index, name = message
        conn.send((index, task(name)))


def failed_report(name: str, message: str) -> Report:
    """The report of a file whose validation could not finish."""
    finding = Finding(layer="xml", rule=LAYER_FAILED, severity="fatal", message=message)
    return Report(
        path=name,
        container=None,
        syntax=None,
        profile=None,
        findings=(finding,),
        error=message,
        error_type="ValidationAborted",
    )


class _Slot:
    def __init__(
        self, context: Any, task: Task, init: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        parent, child = context.Pipe()
        self.conn: Connection = parent
        self.process: BaseProcess = context.Process(
            target=_worker, args=(child, task, init, args), daemon=True
        )
        self.process.start()
        child.close()
        self.job: tuple[int, str] | None = None
        self.started = 0.0
        self.tasks = 0

    def worn(self, max_tasks: int | None, max_rss_mb: float | None) -> bool:
        """Whether this idle worker should be replaced before its next file."""
        if max_tasks is not None and self.tasks >= max_tasks:
            return True
        if max_rss_mb is None or self.process.pid is None:
            return False
        rss = rss_mb(self.process.pid)
        return rss is not None and rss > max_rss_mb

    def submit(self, index: int, name: str) -> None:
        self.job = (index, name)
        self.started = time.monotonic()
        self.conn.send((index, name))

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run(
    names: Sequence[str],
    task: Task,
    init: Callable[..., None],
    init_args: tuple[Any, ...],
    jobs: int,
    timeout: float | None,
    *,
    max_tasks: int | None = None,
    max_rss_mb: float | None = DEFAULT_MAX_RSS_MB,
    stats: dict[str, int] | None = None,
) -> Iterator[Report]:
    """Apply `task` to every name on `jobs` workers; yield reports in input order.

    A worker is replaced after `max_tasks` files or once its RSS passes `max_rss_mb` (None: no
    limit); `stats`, if given, receives the number of workers started and recycled.
    """
    if max_tasks is not None and max_tasks < 1:
        raise ValueError("max_tasks must be at least 1")
    counts = stats if stats is not None else {}
    counts.update(started=0, recycled=0)
    context = _context()

    def new_slot() -> _Slot:
        counts["started"] += 1
        return _Slot(context, task, init, init_args)

    pending = list(enumerate(names))[::-1]
    done: dict[int, Report] = {}
    next_out = 0
    slots = [new_slot() for _ in range(min(jobs, len(names)))]
    try:
        for slot in slots:
            if pending:
                slot.submit(*pending.pop())
        while next_out < len(names):
            busy = [s for s in slots if s.job is not None]
            wait_for = None
            if timeout is not None and busy:
                wait_for = max(0.0, min(s.started + timeout for s in busy) - time.monotonic())
            ready = wait([s.conn for s in busy], timeout=wait_for)
            now = time.monotonic()
            for index_slot, slot in enumerate(slots):
                if slot.job is None:
                    continue
                index, name = slot.job
                if slot.conn in ready:
                    try:
                        got_index, report = slot.conn.recv()
                    except (EOFError, OSError):
                        code = slot.process.exitcode
                        done[index] = failed_report(
                            name, f"the validating process died (exit code {code}) on this file"
                        )
                        slot.stop(kill=True)
                        slots[index_slot] = slot = new_slot()
                    else:
                        done[got_index] = report
                        slot.job = None
                        slot.tasks += 1
                        if pending and slot.worn(max_tasks, max_rss_mb):
                            # Between two files: its results are in, the next file goes to a
                            # fresh worker.
                            slot.stop()
                            counts["recycled"] += 1
                            slots[index_slot] = slot = new_slot()
                elif timeout is not None and now - slot.started >= timeout:
                    done[index] = failed_report(
                        name, f"validation did not finish within {timeout:g} s and was stopped"
                    )
                    slot.stop(kill=True)
                    slots[index_slot] = slot = new_slot()
                if slot.job is None and pending:
                    slot.submit(*pending.pop())
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
    finally:
        for slot in slots:
            slot.stop(kill=slot.job is not None)
