"""A small process pool for batches that can stop a worker stuck on one file.

saxonche cannot interrupt a running transform, so the only way to bound the time spent on a
hostile or pathological document is to run it in a process that can be killed. A file that
exceeds the time limit gets a fatal LAYER-FAILED report; its worker is replaced and the batch
goes on. A worker that dies (a crash in native code) is reported the same way.

Workers are also recycled, so a long batch cannot grow: a worker whose own resident memory
(pages shared with the parent it was forked from are not counted) exceeds `max_rss_mb` after a
file (default DEFAULT_MAX_RSS_MB; Linux, read from /proc), or that has
validated `max_tasks` files (default: no limit), is stopped between two files and replaced. Its
results are already collected, so nothing is lost; the new worker compiles its stylesheets again
(a few seconds of CPU), which is why the limits are high by default: with Saxon's young generation
bounded (saxonheap.py) a worker validating typical invoices of both syntaxes peaks at about
550 MB (benchmarks/README.md, target 4).

With an `affinity` function (a cheap guess of each file's syntax), each worker keeps to the files
of one syntax, so it compiles and holds only that syntax's stylesheets: a worker that saw UBL and
CII holds 8 compiled stylesheets and peaks at about 550 MB, one that sees one syntax stays under
400 MB. A free worker takes the earliest pending file of its own syntax, looking at most `window`
files past the earliest pending one (files are classified in input order, as far as needed, into
a queue per syntax); a fresh worker prefers a syntax no other worker holds; when the window holds
only files of other syntaxes, the worker is replaced by a fresh one (it compiles again, once per
switch) rather than made to hold both, unless fewer than `switch_after` files are left and
another worker can take them (the end of a batch): then it waits. Reports are still yielded in
input order; at most about `window` of them wait for an earlier file (a sorted folder, all CII
then all UBL, is validated by one worker from each end).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from .report import LAYER_FAILED, Report, fatal_report

Task = Callable[[str], Report]
Affinity = Callable[[str], "str | None"]

# About twice the resident set of a worker between two typical invoices of both syntaxes (about
# 390 MB): only an outlier (a huge invoice, or unforeseen growth) triggers a replacement.
DEFAULT_MAX_RSS_MB = 768.0
# How far past the earliest pending file a worker looks for a file of its syntax.
DEFAULT_WINDOW = 10_000
# A worker with only other syntaxes ahead is replaced when at least this many files are left;
# with fewer it waits and leaves them to the workers that hold their syntax. A fresh worker
# compiles for as long as it takes to validate one to two hundred typical invoices, so replacing
# it for the tail of a batch (a sorted folder: its CII files, then its UBL files) costs more CPU
# than the wall time it saves, and leaves the kept workers of a BatchValidator mixed up.
DEFAULT_SWITCH_AFTER = 1000
# Files after which a worker over the resident-set limit has its own pages read again even when
# its resident set did not grow (see _Slot.worn): a read costs about 4 ms on a large worker.
PRIVATE_EVERY = 32


_PAGE_MB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / 1024**2


def rss_mb(pid: int) -> float | None:
    """The resident set size of a process in MB, or None where /proc cannot tell."""
    try:
        # statm's second field: resident pages (one short line, read after every file).
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_MB
    except (OSError, ValueError, IndexError):
        return None


def private_mb(pid: int) -> float | None:
    """The memory a process does not share (private clean + dirty pages) in MB, or None where
    /proc cannot tell. Costs a few milliseconds on a large process: read only when the
    resident set is over the limit."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            text = rollup.read()
    except OSError:
        return None
    total_kb = 0
    for line in text.splitlines():
        if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            try:
                total_kb += int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return total_kb / 1024


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    # Fork where possible: scripts need no __main__ guard, and a worker builds its own Saxon
    # processor, so a parent that already used Saxon is safe to fork.
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _worker(
    conn: Connection, task: Task, init: Callable[..., None], init_args: tuple[Any, ...]
) -> None:
    from . import schematron

    # Ctrl-C reaches the whole process group: the parent decides (it stops the workers and
    # reports what finished); a worker would only die with a traceback on the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's "SIGTERM as Ctrl-C"
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
    """The report of a file whose validation could not finish (time limit, dead worker).

    Invalid through its fatal LAYER-FAILED finding, not unreadable: `error` stays None, so the
    CLI exits 1 (invalid), not 2, as for any layer that fails closed.
    """
    return fatal_report(name, "xml", LAYER_FAILED, message, error_type="ValidationAborted")


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
        self.keys: set[str] = set()  # the syntaxes this worker has validated (affinity)
        # (resident MB, private MB, files done) at the last reading of the worker's own pages.
        self.private: tuple[float, float, int] | None = None

    def worn(self, max_tasks: int | None, max_rss_mb: float | None) -> bool:
        """Whether this idle worker should be replaced before its next file."""
        if max_tasks is not None and self.tasks >= max_tasks:
            return True
        if max_rss_mb is None or self.process.pid is None:
            return False
        rss = rss_mb(self.process.pid)
        if rss is None or rss <= max_rss_mb:
            return False
        # A forked worker's resident set counts the pages it still shares with its parent: a
        # large parent (a long test run, a service) would make every worker look worn after
        # every file. Past the cheap check, only the worker's own pages decide. Reading them
        # costs milliseconds, so after a first reading they are read again only when they may
        # have crossed the limit: when the resident set grew by more than the margin left (a
        # new private page is a resident one), or every PRIVATE_EVERY files (a write to a page
        # shared with the parent makes it private without growing the set).
        if self.private is not None:
            rss_then, private_then, tasks_then = self.private
            if (private_then + max(0.0, rss - rss_then) <= max_rss_mb
                    and self.tasks - tasks_then < PRIVATE_EVERY):
                return False
        private = private_mb(self.process.pid)
        if private is None:
            return True
        self.private = (rss, private, self.tasks)
        return private > max_rss_mb

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


class WorkerPool:
    """Worker processes that apply `task` to names, kept from one `run` to the next.

    Each worker keeps what it built (compiled stylesheets) for the pool's life; `close()` (or
    leaving the `with` block) stops them. The options are those of `run`.
    """

    def __init__(
        self,
        task: Task,
        init: Callable[..., None],
        init_args: tuple[Any, ...],
        jobs: int,
        timeout: float | None,
        *,
        max_tasks: int | None = None,
        max_rss_mb: float | None = DEFAULT_MAX_RSS_MB,
        stats: dict[str, int] | None = None,
        affinity: Affinity | None = None,
        window: int = DEFAULT_WINDOW,
        switch_after: int = DEFAULT_SWITCH_AFTER,
    ) -> None:
        if max_tasks is not None and max_tasks < 1:
            raise ValueError("max_tasks must be at least 1")
        if window < 1:
            raise ValueError("window must be at least 1")
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self._task, self._init, self._init_args = task, init, init_args
        self._jobs, self._timeout = jobs, timeout
        self._max_tasks, self._max_rss_mb = max_tasks, max_rss_mb
        self._affinity, self._window, self._switch_after = affinity, window, switch_after
        self.stats = stats if stats is not None else {}
        self.stats.update(started=0, recycled=0, switched=0)
        self._context = _context()
        self._slots: list[_Slot] = []
        self._running = False
        self._closed = False

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker (a busy one is killed)."""
        self._closed = True
        slots, self._slots = self._slots, []
        for slot in slots:
            slot.stop(kill=slot.job is not None)

    def _new_slot(self) -> _Slot:
        self.stats["started"] += 1
        return _Slot(self._context, self._task, self._init, self._init_args)

    def run(self, names: Sequence[str]) -> Iterator[Report]:
        """Apply the task to every name; yield reports in input order.

        Abandoning the iteration early kills the workers busy with this run's files (their
        results would be stale); the others stay for the next run.
        """
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        if self._running:
            raise RuntimeError("the worker pool is already running a batch")
        self._running = True
        try:
            yield from self._run(names)
        finally:
            self._running = False
            busy = [slot for slot in self._slots if slot.job is not None]
            for slot in busy:
                slot.stop(kill=True)
            self._slots = [slot for slot in self._slots if slot.job is None]

    def _run(self, names: Sequence[str]) -> Iterator[Report]:
        counts, affinity, window = self.stats, self._affinity, self._window
        timeout, max_tasks, max_rss_mb = self._timeout, self._max_tasks, self._max_rss_mb
        # Files are classified by key in input order, as far as needed (the "frontier"), into
        # one queue per key: a worker takes the earliest file of its key in O(1).
        queues: dict[str | None, deque[int]] = {}
        frontier = 0
        left = len(names)  # files not yet given to a worker
        done: dict[int, Report] = {}
        next_out = 0
        for position, slot in enumerate(self._slots):
            if names and slot.worn(max_tasks, max_rss_mb):  # worn out by an earlier run
                slot.stop()
                counts["recycled"] += 1
                self._slots[position] = self._new_slot()
        while len(self._slots) < min(self._jobs, len(names)):
            self._slots.append(self._new_slot())
        slots = self._slots

        def classify() -> str | None:
            nonlocal frontier
            key: str | None = None
            if affinity is not None:
                try:
                    key = affinity(names[frontier])
                except Exception:  # a guess only: an unreadable file is the worker's to report
                    key = None
            queues.setdefault(key, deque()).append(frontier)
            frontier += 1
            return key

        def earliest() -> int:
            heads = [q[0] for q in queues.values() if q]
            return min(heads) if heads else frontier

        def head_of(keys: set[str | None]) -> int | None:
            heads = [queues[k][0] for k in keys if queues.get(k)]
            return min(heads) if heads else None

        def find(wanted: set[str | None] | None, unwanted: set[str]) -> tuple[bool, str | None]:
            """(True, key) of the earliest pending file that is wanted (its key in `wanted`, or
            with wanted=None, not in `unwanted`); (False, None) when none within the window."""

            def fits(key: str | None) -> bool:
                if wanted is not None:
                    return key in wanted
                return key is not None and key not in unwanted

            found = [(q[0], k) for k, q in queues.items() if q and fits(k)]
            if found:
                return True, min(found)[1]
            limit = earliest() + window
            while frontier < len(names) and frontier < limit:
                key = classify()
                if fits(key):
                    return True, key
            return False, None

        def choose(slot: _Slot) -> int | None:
            """The index of the next file for `slot`, None if no file suits it."""
            if slot.keys:
                ok, _ = find({*slot.keys, None}, set())
                return head_of({*slot.keys, None}) if ok else None
            held: set[str] = set().union(*(s.keys for s in slots if s is not slot))
            if affinity is not None and held:
                ok, key = find(None, held)  # a syntax nobody holds, preferably
                if ok and key is not None:
                    return queues[key][0]
            if not any(queues.values()):
                classify()
            return earliest()

        def can_take(slot: _Slot, index: int) -> bool:
            key = next(k for k, q in queues.items() if q and q[0] == index)
            return not slot.keys or key is None or key in slot.keys

        def feed(position: int, may_idle: bool) -> None:
            nonlocal left
            slot = slots[position]
            if not left:
                return
            chosen = choose(slot)
            if chosen is None:
                first = earliest()
                others_can = any(s is not slot and can_take(s, first) for s in slots)
                if may_idle and others_can and left < self._switch_after:
                    return  # the tail is the other workers': cheaper than compiling again
                # Only other syntaxes ahead: a fresh worker rather than one holding both.
                slot.stop()
                counts["switched"] += 1
                slots[position] = slot = self._new_slot()
                chosen = choose(slot)
                assert chosen is not None  # a fresh worker takes any file
            key = next(k for k, q in queues.items() if q and q[0] == chosen)
            queues[key].popleft()
            left -= 1
            if key is not None:
                slot.keys.add(key)
            slot.submit(chosen, names[chosen])

        def feed_idle() -> None:
            for position, slot in enumerate(slots):
                if slot.job is None:
                    feed(position, may_idle=True)
            if left and all(slot.job is None for slot in slots):
                feed(0, may_idle=False)  # never all idle with files left

        feed_idle()
        try:
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
                            slots[index_slot] = slot = self._new_slot()
                        else:
                            done[got_index] = report
                            slot.job = None
                            slot.tasks += 1
                            if left and slot.worn(max_tasks, max_rss_mb):
                                # Between two files: its results are in, the next file goes to a
                                # fresh worker.
                                slot.stop()
                                counts["recycled"] += 1
                                slots[index_slot] = slot = self._new_slot()
                    elif timeout is not None and now - slot.started >= timeout:
                        done[index] = failed_report(
                            name, f"validation did not finish within {timeout:g} s and was stopped"
                        )
                        slot.stop(kill=True)
                        slots[index_slot] = slot = self._new_slot()
                feed_idle()
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
        except KeyboardInterrupt:
            # Ctrl-C: every file finished is still reported, those waiting behind one still
            # running out of input order; then the caller sees the interrupt (run() stops the
            # busy workers).
            for index in sorted(done):
                yield done.pop(index)
            raise


def run(names: Sequence[str], *args: Any, **options: Any) -> Iterator[Report]:
    """Apply a task to every name on a WorkerPool made for this batch alone (`args` and
    `options` are WorkerPool's); reports in input order; the workers are stopped at the end."""
    with WorkerPool(*args, **options) as workers:
        yield from workers.run(names)
