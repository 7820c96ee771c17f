"""Memory of validating workers: Saxon's bounded heap, and worker recycling in the batch pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from facturflow import validate_many
from facturflow.validation import pool, saxonheap
from facturflow.validation.report import Report

from .helpers import VALID_CII, VALID_UBL

LINUX = sys.platform.startswith("linux")


# --- the isolate options ------------------------------------------------------------------------


def test_default_options_bound_the_young_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(saxonheap.ENV, raising=False)
    assert saxonheap.options_from_env() == saxonheap.DEFAULT_OPTIONS == ("-XX:MaxNewSize=64m",)


def test_options_none_keeps_saxonc_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(saxonheap.ENV, "none")
    assert saxonheap.options_from_env() == ()
    assert saxonheap.bootstrap().startswith("SaxonC defaults (no options)")


def test_unknown_options_are_dropped_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # GraalVM ends the whole process on an option it does not know: never pass one on.
    monkeypatch.setenv(saxonheap.ENV, "-Xmx2g -XX:+NoSuchFlag -XX:MaxNewSize=32m -Dx=y")
    with pytest.warns(UserWarning) as caught:
        options = saxonheap.options_from_env()
    assert options == ("-Xmx2g", "-XX:MaxNewSize=32m")
    assert sorted(str(w.message).split()[-1] for w in caught) == ["'-Dx=y'", "'-XX:+NoSuchFlag'"]


@pytest.mark.skipif(not LINUX, reason="the saxonche wheel layout read here is Linux's")
def test_the_saxonc_symbols_the_bootstrap_needs_are_found() -> None:
    libs = saxonheap._libraries()
    assert libs is not None
    names = {"create_graalvm_isolate", "c_nativeCall"}
    assert set(saxonheap._elf_symbols(libs[0], names)) == names


def _probe(env: dict[str, str]) -> dict[str, object]:
    """Validate two fixtures in a fresh process; return the isolate status and the reports."""
    code = textwrap.dedent(f"""
        import json
        from facturflow import validate
        from facturflow.validation import saxonheap
        reports = [validate(p) for p in ({str(VALID_CII)!r}, {str(VALID_UBL)!r})]
        print(json.dumps({{
            "status": saxonheap.status,
            "reports": [[r.ok, [(f.rule, f.severity, f.location.line if f.location else None)
                                for f in r.findings]] for r in reports],
        }}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


@pytest.mark.skipif(not LINUX, reason="the bounded isolate is only created on Linux")
def test_a_bounded_isolate_gives_the_same_reports_as_saxonc_defaults() -> None:
    bounded = _probe({saxonheap.ENV: "-XX:MaxNewSize=16m -XX:+NoSuchFlag"})
    default = _probe({saxonheap.ENV: "none"})
    assert bounded["status"] == "isolate created with -XX:MaxNewSize=16m"
    assert str(default["status"]).startswith("SaxonC defaults")
    assert bounded["reports"] == default["reports"]
    assert [ok for ok, _ in bounded["reports"]] == [True, True]  # type: ignore[attr-defined]


# --- worker recycling -----------------------------------------------------------------------------


def _init(tag: str) -> None:
    os.environ["FACTURFLOW_TEST_TAG"] = tag


def _whoami(name: str) -> Report:
    """A report naming the file and the worker that produced it (no Saxon: fast)."""
    if name == "crash":
        os._exit(3)
    return Report(
        path=f"{name}@{os.getpid()}:{os.environ.get('FACTURFLOW_TEST_TAG')}",
        container=None,
        syntax=None,
        profile=None,
        findings=(),
    )


def _names_and_workers(reports: list[Report]) -> tuple[list[str], list[str]]:
    names = [r.path.split("@")[0] for r in reports]
    workers = [r.path.split("@")[1] for r in reports]
    return names, workers


def test_workers_are_replaced_after_max_tasks_and_nothing_is_lost() -> None:
    names = [f"f{i}" for i in range(11)]
    stats: dict[str, int] = {}
    reports = list(
        pool.run(names, _whoami, _init, ("t",), jobs=2, timeout=None, max_tasks=3, stats=stats)
    )
    got, workers = _names_and_workers(reports)
    assert got == names  # input order, every file once
    assert all(w.endswith(":t") for w in workers)  # a replacement is initialised like the first
    per_worker = {w: workers.count(w) for w in workers}
    assert max(per_worker.values()) <= 3
    assert len(per_worker) >= 4
    assert stats["started"] == len(per_worker) and stats["recycled"] == stats["started"] - 2


def test_workers_over_the_memory_threshold_are_replaced() -> None:
    names = [f"f{i}" for i in range(5)]
    stats: dict[str, int] = {}
    reports = list(pool.run(names, _whoami, _init, ("m",), 1, None, max_rss_mb=0.001, stats=stats))
    got, workers = _names_and_workers(reports)
    assert got == names
    if pool.rss_mb(os.getpid()) is None:
        pytest.skip("no /proc here: the RSS threshold cannot be read")
    assert len(set(workers)) == 5 and stats["recycled"] == 4  # the last file needs no successor


def test_no_recycling_without_limits() -> None:
    reports = list(pool.run(["a", "b", "c", "d"], _whoami, _init, ("n",), 1, None, max_rss_mb=None))
    _, workers = _names_and_workers(reports)
    assert len(set(workers)) == 1


def test_recycling_and_a_crashed_worker_together_lose_nothing() -> None:
    names = ["a", "b", "crash", "c", "d", "e"]
    reports = list(pool.run(names, _whoami, _init, ("c",), 2, None, max_tasks=2))
    assert [r.path.split("@")[0] for r in reports] == ["a", "b", "crash", "c", "d", "e"]
    crashed = reports[2]
    # A dead worker fails closed: invalid through a fatal LAYER-FAILED finding, not unreadable.
    assert crashed.path == "crash" and not crashed.ok and crashed.error is None
    assert [f.rule for f in crashed.fatal] == ["LAYER-FAILED"]
    assert "died" in crashed.fatal[0].message
    assert all(r.error is None for i, r in enumerate(reports) if i != 2)


def test_max_tasks_must_be_positive() -> None:
    with pytest.raises(ValueError):
        list(pool.run(["a"], _whoami, _init, ("x",), 1, None, max_tasks=0))


def test_validate_many_with_recycling_gives_the_reports_of_one_process() -> None:
    paths = [VALID_CII, VALID_UBL, VALID_CII]
    alone = [_summary(r) for r in validate_many(paths, jobs=1)]
    recycled = [_summary(r) for r in validate_many(paths, jobs=2, recycle_after=1)]
    assert recycled == alone
    assert [ok for ok, _path, _ in alone] == [True, True, True]


def _summary(report: Report) -> tuple[bool, str, list[tuple[str, str]]]:
    return report.ok, report.path, [(f.rule, f.severity) for f in report.findings]
