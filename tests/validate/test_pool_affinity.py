"""Syntax affinity in the batch pool: each worker keeps to one syntax; nothing lost or reordered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facturflow import validate_many
from facturflow.validation import pool, syntax_family
from facturflow.validation.report import Report

from .helpers import FIXTURES, VALID_CII, VALID_PDF, VALID_UBL


def _init() -> None:
    pass


def _whoami(name: str) -> Report:
    """A report naming the file and the worker that produced it (no Saxon: fast)."""
    if name.startswith("crash"):
        os._exit(3)
    return Report(
        path=f"{name}@{os.getpid()}", container=None, syntax=None, profile=None, findings=()
    )


def _key(name: str) -> str | None:
    """Test affinity: 'u…' files are one syntax, 'c…' another, anything else unknown."""
    if name == "boom":
        raise OSError("cannot read")
    return {"u": "ubl", "c": "cii"}.get(name[0])


Run = tuple[list[str], dict[str, set[str]], dict[str, int]]


def _run(names: list[str], jobs: int, **kwargs: Any) -> Run:
    stats: dict[str, int] = {}
    reports = list(pool.run(names, _whoami, _init, (), jobs, None, stats=stats, **kwargs))
    got = [r.path.split("@")[0] for r in reports]
    keys_by_worker: dict[str, set[str]] = {}
    for r in reports:
        name, worker = r.path.split("@")
        key = _key(name) if name != "boom" else None
        if key is not None:
            keys_by_worker.setdefault(worker, set()).add(key)
    return got, keys_by_worker, stats


def test_each_worker_keeps_to_one_syntax_in_a_mixed_batch() -> None:
    names = [f"{'uc'[i % 3 == 0]}{i}" for i in range(60)]  # one CII for two UBL, interleaved
    got, keys_by_worker, _ = _run(names, 2, affinity=_key)
    assert got == names  # input order, every file once
    assert keys_by_worker and all(len(keys) == 1 for keys in keys_by_worker.values())
    assert {k for keys in keys_by_worker.values() for k in keys} == {"ubl", "cii"}


def test_a_sorted_batch_is_taken_from_both_ends_without_switching() -> None:
    # A folder listed in order: all CII, then all UBL (more than any switch threshold).
    names = [f"c{i}" for i in range(150)] + [f"u{i}" for i in range(150, 300)]
    got, keys_by_worker, stats = _run(names, 2, affinity=_key, switch_after=1000)
    assert got == names
    assert sorted(map(sorted, keys_by_worker.values())) == [["cii"], ["ubl"]]
    assert stats["switched"] == 0 and stats["started"] == 2


def test_without_affinity_a_worker_takes_either_syntax() -> None:
    # One worker, so the outcome does not hang on which of two workers starts first (with two,
    # a fast worker can take every file before the other is up: CI saw it under load).
    names = [f"{'uc'[i % 2]}{i}" for i in range(40)]
    got, keys_by_worker, stats = _run(names, 1)
    assert got == names
    assert list(keys_by_worker.values()) == [{"ubl", "cii"}]
    assert stats["switched"] == 0 and stats["started"] == 1
    # The same batch with affinity: the lone worker is replaced rather than mixing syntaxes.
    got, keys_by_worker, stats = _run(names, 1, affinity=_key, switch_after=1)
    assert got == names
    assert all(len(keys) == 1 for keys in keys_by_worker.values())
    assert stats["switched"] >= 1


def test_a_worker_whose_syntax_ran_out_is_replaced_not_mixed() -> None:
    # One UBL file, then only CII files, beyond a small window: the UBL worker must switch.
    names = ["u0"] + [f"c{i}" for i in range(1, 30)]
    got, keys_by_worker, stats = _run(names, 2, affinity=_key, window=4, switch_after=1)
    assert got == names
    assert all(len(keys) == 1 for keys in keys_by_worker.values())
    assert stats["switched"] >= 1
    assert stats["started"] == 2 + stats["switched"] + stats["recycled"]
    assert len([k for k in keys_by_worker.values() if k == {"cii"}]) >= 2


def test_the_tail_of_a_batch_is_left_to_the_workers_of_its_syntax() -> None:
    # Few files of the other syntax left: waiting is cheaper than a fresh worker compiling.
    names = ["u0"] + [f"c{i}" for i in range(1, 30)]
    got, keys_by_worker, stats = _run(names, 2, affinity=_key, window=4)
    assert got == names
    assert stats["switched"] == 0 and stats["started"] == 2
    assert sorted(map(sorted, keys_by_worker.values())) == [["cii"], ["ubl"]]


def test_workers_never_all_wait_while_files_are_left() -> None:
    # Both workers hold UBL when only CII files remain: one of them must switch.
    names = ["u0", "u1", "u2", "u3"] + [f"c{i}" for i in range(4, 12)]
    got, keys_by_worker, _ = _run(names, 2, affinity=_key, window=2)
    assert got == names
    assert all(len(keys) == 1 for keys in keys_by_worker.values())


def test_unknown_and_unreadable_keys_go_to_any_worker() -> None:
    names = ["u0", "x1", "boom", "c3", "x4", "u5", "c6"]
    got, keys_by_worker, _ = _run(names, 2, affinity=_key)
    assert got == names
    assert all(len(keys) == 1 for keys in keys_by_worker.values())


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        list(pool.run(["a"], _whoami, _init, (), 1, None, affinity=_key, window=0))


def test_syntax_family_sniffs_the_fixtures(tmp_path: Path) -> None:
    assert syntax_family(str(VALID_UBL)) == "ubl"
    assert syntax_family(str(VALID_CII)) == "cii"
    assert syntax_family(str(VALID_PDF)) == "cii"
    other = tmp_path / "other.xml"
    other.write_bytes(b"<?xml version='1.0'?><note/>")
    assert syntax_family(str(other)) is None


def test_real_batch_workers_each_compile_one_syntax() -> None:
    files = [VALID_UBL, VALID_CII, VALID_PDF] * 3
    stats: dict[str, int] = {}
    reports = list(
        pool.run(
            [str(f) for f in files],
            _whoami,
            _init,
            (),
            2,
            None,
            stats=stats,
            affinity=syntax_family,
        )
    )
    workers: dict[str, set[str | None]] = {}
    for r in reports:
        name, worker = r.path.split("@")
        workers.setdefault(worker, set()).add(syntax_family(name))
    assert all(len(families) == 1 for families in workers.values())


def test_validate_many_with_affinity_gives_the_reports_of_one_process() -> None:
    paths = sorted(FIXTURES.rglob("*.xml")) + sorted(FIXTURES.rglob("*.pdf"))
    alone = [
        (r.path, r.ok, [(f.rule, f.severity) for f in r.findings])
        for r in validate_many(paths, jobs=1)
    ]
    pooled = [
        (r.path, r.ok, [(f.rule, f.severity) for f in r.findings])
        for r in validate_many(paths, jobs=2)
    ]
    unmixed = [
        (r.path, r.ok, [(f.rule, f.severity) for f in r.findings])
        for r in validate_many(paths, jobs=2, syntax_affinity=False)
    ]
    assert pooled == alone == unmixed


# --- workers kept between batches ----------------------------------------------------------------


def test_a_worker_pool_keeps_its_workers_from_one_run_to_the_next() -> None:
    names = [f"{'uc'[i % 2]}{i}" for i in range(12)]
    with pool.WorkerPool(_whoami, _init, (), 2, None, affinity=_key) as workers:
        first = list(workers.run(names))
        second = list(workers.run(names[::-1]))
        stats = dict(workers.stats)
    assert [r.path.split("@")[0] for r in first] == names
    assert [r.path.split("@")[0] for r in second] == names[::-1]
    pids = {r.path.split("@")[1] for r in first}
    assert {r.path.split("@")[1] for r in second} == pids and len(pids) == 2
    assert stats["started"] == 2


def test_abandoning_a_run_replaces_only_the_busy_workers() -> None:
    names = [f"u{i}" for i in range(20)]
    with pool.WorkerPool(_whoami, _init, (), 2, None) as workers:
        for _ in workers.run(names):
            break  # the consumer stops early: in-flight results would be stale
        again = [r.path.split("@")[0] for r in workers.run(names)]
        assert again == names
        assert workers.stats["started"] >= 2
    with pytest.raises(RuntimeError):
        list(workers.run(names))  # closed


def test_batch_validator_validates_batches_on_the_same_workers() -> None:
    from facturflow import BatchValidator

    paths = [VALID_UBL, VALID_CII, VALID_PDF]
    alone = [(r.path, r.ok, [f.rule for f in r.findings]) for r in validate_many(paths, jobs=1)]
    with BatchValidator(jobs=2) as validator:
        for _ in range(2):
            got = [(r.path, r.ok, [f.rule for f in r.findings])
                   for r in validator.validate_many(paths)]
            assert got == alone
        assert validator.stats["started"] == 2  # compiled once, used twice
        assert list(validator.validate_many([])) == []


def test_sniffing_a_fifo_or_a_device_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    assert syntax_family(str(fifo)) is None  # returns at once: nobody writes to the pipe
    assert syntax_family("/dev/zero") is None
    with pytest.raises(OSError):
        syntax_family(str(tmp_path / "missing.xml"))  # the pool turns this into "unknown"


def test_a_batch_naming_a_fifo_reports_it_and_goes_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    reports = list(validate_many([VALID_UBL, fifo, VALID_CII], jobs=2, timeout=60))
    assert [r.ok for r in reports] == [True, False, True]
    assert reports[1].error and "regular file" in reports[1].error


def test_a_kept_pool_replaces_a_crashed_worker_and_serves_the_next_run() -> None:
    with pool.WorkerPool(_whoami, _init, (), 2, None, affinity=_key) as workers:
        first = list(workers.run(["u0", "crash1", "c2", "u3"]))
        assert [r.path.split("@")[0] for r in first[:1] + first[2:]] == ["u0", "c2", "u3"]
        assert not first[1].ok and "died" in first[1].fatal[0].message
        second = [r.path.split("@")[0] for r in workers.run(["c4", "u5"])]
        assert second == ["c4", "u5"]
        assert workers.stats["started"] == 3  # the two first workers and the crashed one's heir


# --- recycling by memory next to a large parent ------------------------------------------------

_PAGE = 4096
_BALLAST = bytearray()  # the parent's pages, shared with each worker it forks
_GROWN: list[bytearray] = []  # a worker's own pages, kept


def _touch(buffer: bytearray, value: int) -> None:
    for offset in range(0, len(buffer), _PAGE):
        buffer[offset] = value


def _memory_task(name: str) -> Report:
    """_whoami, after 'grow…' makes 200 MB of the worker's own pages and 'dirty…' writes to
    every page of the ballast (copy on write: its own pages, the resident set unchanged)."""
    if name.startswith("grow"):
        _GROWN.append(bytearray(200 * 1024 * 1024))
        _touch(_GROWN[-1], 1)
    elif name.startswith("dirty"):
        _touch(_BALLAST, 2)
    return _whoami(name)


@pytest.fixture
def large_parent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """300 MB resident in this process (a long test run, a service) while a test forks its
    workers; yields the list of pids whose own pages were read (pool.private_mb)."""
    if pool.rss_mb(os.getpid()) is None or pool.private_mb(os.getpid()) is None:
        pytest.skip("no /proc here: the memory of a worker cannot be read")
    reads: list[int] = []
    real = pool.private_mb

    def counted(pid: int) -> float | None:
        reads.append(pid)
        return real(pid)

    monkeypatch.setattr(pool, "private_mb", counted)
    _BALLAST.extend(bytes(300 * 1024 * 1024))
    _touch(_BALLAST, 1)
    yield reads
    _BALLAST.clear()


def _memory_run(names: list[str]) -> tuple[list[str], dict[str, int]]:
    with pool.WorkerPool(_memory_task, _init, (), 1, None, max_rss_mb=150) as workers:
        results = list(workers.run(names))
        stats = dict(workers.stats)
    assert [r.path.split("@")[0] for r in results] == names
    return [r.path.split("@")[1] for r in results], stats


def test_pages_shared_with_a_large_parent_do_not_make_a_worker_worn(
    large_parent: list[int],
) -> None:
    # A forked worker's resident set counts its parent's pages: a large parent made every
    # worker look worn after every file, so each was replaced. Then each file paid a reading
    # of the worker's own pages (smaps_rollup, about 4 ms): now one in PRIVATE_EVERY.
    names = [f"u{i}" for i in range(3 * pool.PRIVATE_EVERY)]
    workers, stats = _memory_run(names)
    assert len(set(workers)) == 1
    assert stats["started"] == 1 and stats.get("recycled", 0) == 0
    assert 1 <= len(large_parent) <= 3, len(large_parent)


def test_a_worker_growing_past_the_limit_next_to_a_large_parent_is_replaced_at_once(
    large_parent: list[int],
) -> None:
    # Its resident set grew by more than the margin left: its own pages are read at once.
    workers, stats = _memory_run(["u0", "u1", "grow2", "u3", "u4"])
    assert workers[0] == workers[1] == workers[2] != workers[3] == workers[4]
    assert stats["started"] == 2 and stats["recycled"] == 1


def test_a_worker_writing_to_its_parents_pages_is_replaced_within_private_every_files(
    large_parent: list[int],
) -> None:
    # Copy on write turns 300 MB private without growing the resident set: only the periodic
    # reading sees it, PRIVATE_EVERY files after the first reading at most.
    names = ["u0", "dirty1", *(f"u{i}" for i in range(2, pool.PRIVATE_EVERY + 4))]
    workers, stats = _memory_run(names)
    assert stats["started"] == 2 and stats["recycled"] == 1
    first = workers.index(workers[-1])
    assert workers[:first] == [workers[0]] * first and 2 <= first <= pool.PRIVATE_EVERY + 2
